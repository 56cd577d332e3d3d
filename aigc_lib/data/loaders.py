"""Seeded splits and the trainer's loaders: exact resume and data-parallel sharding (notebooks 03 and 05)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import Tensor

from aigc_lib.data.images import ImageData

if TYPE_CHECKING:
    from typing import Self

__all__ = ["DatasetLoader", "TensorLoader", "infinite", "split", "split_indices"]

T = TypeVar("T")


def split_indices(n: int, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0) -> tuple[Tensor, ...]:
    """Shuffle 0..n-1 once (seeded), cut it into disjoint parts by ``fractions``, e.g. 6:2:2 (notebook 05)."""
    if len(fractions) < 1 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be positive and sum to 1, got {tuple(fractions)}.")
    sizes = [round(f * n) for f in fractions[:-1]]
    sizes.append(n - sum(sizes))
    if min(sizes) < 1:
        raise ValueError(f"n={n} is too small to split by {tuple(fractions)}: a part would be empty.")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return tuple(order.split(sizes))


def split(data: ImageData | Tensor | Sequence[T], fractions: Sequence[float] = (0.6, 0.2, 0.2),
          seed: int = 0) -> tuple[Any, ...]:
    """``split_indices`` applied to an ImageData, a tensor or a list (e.g. of text lines) (notebook 05)."""
    if isinstance(data, str):
        raise TypeError("split a list of lines or documents (e.g. text.splitlines()), not one string.")
    parts = split_indices(len(data), fractions, seed)
    if isinstance(data, ImageData):
        return tuple(data.subset(p) for p in parts)
    if isinstance(data, Tensor):
        return tuple(data[p] for p in parts)
    return tuple([data[i] for i in p.tolist()] for p in parts)


# --------------------------------------------------------------------------------------------- loaders
class _EpochLoader:
    """Epoch/position state, the per-epoch order and sharding that both loaders share (notebook 03).

    Protocol used by the trainer: ``len`` = batches per epoch; iterating yields the rest of the current
    epoch from ``position`` and then moves to the next epoch; ``state_dict``/``load_state_dict`` resume.
    """

    def _setup(self, num_items: int, batch_size: int, shuffle: bool, drop_last: bool, seed: int) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if num_items < 1:
            raise ValueError("the dataset is empty: a loader needs at least one item.")
        self.num_items, self.batch_size, self.shuffle, self.drop_last, self.seed = (
            num_items, batch_size, shuffle, drop_last, seed)
        self.num_shards, self.shard_index, self.epoch, self.position = 1, 0, 0, 0
        self._check_size()

    def _check_size(self) -> None:
        if self.drop_last and self.num_items < self.global_batch:
            raise ValueError(f"the dataset has {self.num_items} items, fewer than one batch of "
                             f"{self.global_batch} (batch_size {self.batch_size} x {self.num_shards} "
                             "shard(s)): lower batch_size, or pass drop_last=False.")

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.num_shards

    def __len__(self) -> int:
        full, rest = divmod(self.num_items, self.global_batch)
        return full + (1 if rest and not self.drop_last else 0)

    def shard(self, num_shards: int, index: int) -> Self:
        """Data parallel: take slice ``index`` of every global batch of ``batch_size * num_shards`` items."""
        if not (isinstance(num_shards, int) and num_shards >= 1 and 0 <= index < num_shards):
            raise ValueError(f"need num_shards >= 1 and 0 <= index < num_shards, got {num_shards}, {index}.")
        if num_shards > 1 and not self.drop_last:
            raise ValueError("sharding needs drop_last=True, so that every process takes the same steps.")
        self.num_shards, self.shard_index = num_shards, index
        self._check_size()
        return self

    def state_dict(self) -> dict[str, int]:
        """Where the loader is: the epoch, and how many of its batches were already yielded."""
        if self.position >= len(self):
            return {"epoch": self.epoch + 1, "position": 0}
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume at ``state``: the next iteration yields the rest of that epoch."""
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or not 0 <= position <= len(self):
            raise ValueError(f"invalid loader state {state}: position must be in 0..{len(self)}.")
        self.epoch, self.position = epoch, position

    def _index_batches(self, device: torch.device | None = None) -> Iterator[Tensor]:
        """This epoch's index batches from ``position`` on; the order depends only on seed + epoch."""
        if self.shuffle:  # a CPU generator: the same permutation on every device and process
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_items, generator=generator).to(device)
        else:
            order = torch.arange(self.num_items, device=device)
        offset = self.shard_index * self.batch_size
        for step in range(self.position, len(self)):
            start = step * self.global_batch + offset
            yield order[start:start + self.batch_size]

    def _finish_epoch(self) -> None:
        self.epoch, self.position = self.epoch + 1, 0


class TensorLoader(_EpochLoader):
    """Batches of in-memory tensors that live on the device; a batch costs one index (notebook 03)."""

    def __init__(self, *tensors: Tensor, batch_size: int, shuffle: bool = True, drop_last: bool = True,
                 seed: int = 0, device: str | torch.device | None = None,
                 channels_last: bool = False) -> None:
        if not tensors or len({len(t) for t in tensors}) != 1:
            shapes = [tuple(t.shape) for t in tensors]
            raise ValueError(f"need one or more tensors with equal first dimensions, got {shapes}.")
        self._setup(len(tensors[0]), batch_size, shuffle, drop_last, seed)
        self.device = torch.device(device) if device is not None else tensors[0].device
        self.tensors = tuple(self._place(t, channels_last) for t in tensors)  # moved once, here

    def _place(self, tensor: Tensor, channels_last: bool) -> Tensor:
        tensor = tensor.to(self.device)
        if channels_last and tensor.ndim == 4 and tensor.is_floating_point():
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return tensor

    def __iter__(self) -> Iterator[Tensor | tuple[Tensor, ...]]:
        for index in self._index_batches(self.device):
            self.position += 1  # before yielding: a state saved after this batch resumes after it
            batch = tuple(t[index] for t in self.tensors)
            yield batch[0] if len(batch) == 1 else batch
        self._finish_epoch()


class DatasetLoader(_EpochLoader):
    """torch's DataLoader for map-style datasets, with TensorLoader's protocol; batches stay on the CPU."""

    def __init__(self, dataset: Any, batch_size: int, shuffle: bool = True, drop_last: bool = True,
                 seed: int = 0, num_workers: int = 0,
                 collate_fn: Callable[[list[Any]], Any] | None = None) -> None:
        self.dataset, self.num_workers, self.collate_fn = dataset, num_workers, collate_fn
        self._setup(len(dataset), batch_size, shuffle, drop_last, seed)

    def __iter__(self) -> Iterator[Any]:
        from torch.utils.data import DataLoader

        # the batch sampler: this epoch's index lists from `position` on, so resuming skips without loading
        batch_sampler = [index.tolist() for index in self._index_batches()]
        loader = DataLoader(self.dataset, batch_sampler=batch_sampler, num_workers=self.num_workers,
                            collate_fn=self.collate_fn)
        for batch in loader:
            self.position += 1
            yield batch
        self._finish_epoch()


def infinite(loader: Iterable[T]) -> Iterator[T]:
    """Yield batches epoch after epoch, forever; a resumed loader first finishes its epoch (notebook 03)."""
    while True:
        yield from loader
