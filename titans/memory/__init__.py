"""Neural long-term memory (LMM) of Titans: a deep memory that learns at test time.

    from titans.memory import NeuralMemory, MemoryConfig
    mem = NeuralMemory(dim, MemoryConfig(num_heads=4, depth=2))
    y, state = mem(x)                # write-then-read over x [B, T, dim]
    y2, state = mem(x_next, state)   # continue the stream (states are values: the old one is unchanged)
    h, read = mem.retrieve(x, mem.read_state(state))  # MAC's read-only retrieval (eq. 21)

Implementations of the recurrence, from slow and obvious to fast, each tested against the previous one:
``naive_memory`` (token by token), ``chunked_memory`` (chunked, autograd through every chunk) and
``memory_scan`` (one autograd operator with a hand-derived backward, the default).
"""

from .chunked import chunked_memory
from .config import MemoryConfig
from .dispatch import memory_scan
from .layer import NeuralMemory
from .naive import naive_memory
from .state import MemoryState, ReadState

__all__ = ["NeuralMemory", "MemoryConfig", "MemoryState", "ReadState", "chunked_memory", "memory_scan", "naive_memory"]
