"""Executors for client work: clients in lockstep on a leading client axis, chunked data layout."""

from fl_blocks.execution.batches import iterate_batches
from fl_blocks.execution.layout import Chunk, build_chunks
from fl_blocks.execution.lockstep import is_elementwise, train_chunk

__all__ = ["Chunk", "build_chunks", "is_elementwise", "iterate_batches", "train_chunk"]
