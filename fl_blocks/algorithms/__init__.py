"""Learning algorithms composed from the four building blocks."""

from fl_blocks.algorithms.gradient_clipping import build_fed_avg_with_clipping, build_gradient_clipping_client_work

__all__ = ["build_fed_avg_with_clipping", "build_gradient_clipping_client_work"]
