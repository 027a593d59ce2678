"""The process protocol and the four building blocks (TFF's ``tff.learning.templates``)."""

from fl_blocks.templates.aggregation_process import AggregationProcess
from fl_blocks.templates.client_works import ClientResult, ClientWorkProcess
from fl_blocks.templates.composers import compose_learning_process
from fl_blocks.templates.distributors import DistributionProcess, build_broadcast_process
from fl_blocks.templates.finalizers import FinalizerProcess, build_apply_optimizer_finalizer, reject_non_finite_update
from fl_blocks.templates.learning_process import LearningAlgorithmState, LearningProcess, LearningProcessOutput
from fl_blocks.templates.measured_process import IterativeProcess, MeasuredProcess, MeasuredProcessOutput
from fl_blocks.templates.model_delta_client_work import ClientWeighting, build_model_delta_client_work

__all__ = [
    "AggregationProcess",
    "ClientResult",
    "ClientWeighting",
    "ClientWorkProcess",
    "DistributionProcess",
    "FinalizerProcess",
    "IterativeProcess",
    "LearningAlgorithmState",
    "LearningProcess",
    "LearningProcessOutput",
    "MeasuredProcess",
    "MeasuredProcessOutput",
    "build_apply_optimizer_finalizer",
    "build_broadcast_process",
    "build_model_delta_client_work",
    "compose_learning_process",
    "reject_non_finite_update",
]
