"""Learning algorithms composed from the four building blocks."""

from fl_blocks.algorithms.fed_avg import build_unweighted_fed_avg, build_weighted_fed_avg
from fl_blocks.algorithms.fed_avg_with_optimizer_schedule import build_weighted_fed_avg_with_optimizer_schedule
from fl_blocks.algorithms.fed_eval import build_fed_eval
from fl_blocks.algorithms.fed_prox import build_unweighted_fed_prox, build_weighted_fed_prox
from fl_blocks.algorithms.fed_sgd import build_fed_sgd
from fl_blocks.algorithms.gradient_clipping import build_fed_avg_with_clipping, build_gradient_clipping_client_work
from fl_blocks.algorithms.kmeans_clustering import build_fed_kmeans
from fl_blocks.algorithms.mime_lite import build_unweighted_mime_lite, build_weighted_mime_lite
from fl_blocks.templates.model_delta_client_work import ClientWeighting

__all__ = [
    "ClientWeighting",
    "build_fed_avg_with_clipping",
    "build_fed_eval",
    "build_fed_kmeans",
    "build_fed_sgd",
    "build_gradient_clipping_client_work",
    "build_unweighted_fed_avg",
    "build_unweighted_fed_prox",
    "build_unweighted_mime_lite",
    "build_weighted_fed_avg",
    "build_weighted_fed_avg_with_optimizer_schedule",
    "build_weighted_fed_prox",
    "build_weighted_mime_lite",
]
