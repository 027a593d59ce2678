"""Learning algorithms composed from the four building blocks."""

from fl_blocks.algorithms.gradient_clipping import build_fed_avg_with_clipping, build_gradient_clipping_client_work
from fl_blocks.algorithms.kmeans_clustering import build_fed_kmeans

__all__ = ["build_fed_avg_with_clipping", "build_fed_kmeans", "build_gradient_clipping_client_work"]
