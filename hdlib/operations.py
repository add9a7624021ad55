"""Counting the arithmetic of a computation, whatever the operations it is written in.

``torch.utils.flop_counter.FlopCounterMode`` counts matrix products only. A recurrence written
frame by frame (:func:`hdlib.models.polar.exponential_average`) is all element-wise work, which
it does not see. :class:`OperationCounter` counts both, as floating-point operations:

- a matrix product, convolution or attention: PyTorch's own formula (2 per multiply-add);
- an element-wise operation (ATen's ``pointwise`` tag): 1 per output element, so
  ``a * b + c`` on ``n`` elements is ``2 n``; selections and copies (``where``, ``clone``,
  ``fill``, conversions) are not arithmetic and count 0;
- a reduction or a cumulative sum: 1 per input element.

Views, allocations and data movement count 0. Count on the ``"reference"`` backend to count the
model's arithmetic as the documents write it, independent of how a fast backend fuses it.
"""
from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

aten = torch.ops.aten

#: Pointwise-tagged operations that move or select values without arithmetic.
NOT_ARITHMETIC = {aten.where, aten.clone, aten.copy, aten.copy_, aten.fill, aten.fill_,
                  aten._to_copy, aten.masked_fill, aten.masked_fill_, aten.lift_fresh}

#: Operations that are one addition (or comparison) per input element.
ACCUMULATIONS = {aten.cumsum, aten.cumprod, aten.sum, aten.mean, aten.amax, aten.amin,
                 aten.max, aten.min, aten.prod}


def _numel(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, (tuple, list)):
        return sum(_numel(v) for v in value)
    return 0


class OperationCounter(TorchDispatchMode):
    """``with OperationCounter() as counter: ...`` then ``counter.total`` (an int) and
    ``counter.by_operation`` (``{name: count}``) for everything run inside, forward and
    backward (see the module docstring for what one operation is)."""

    def __init__(self):
        super().__init__()
        self.total = 0
        self.by_operation: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func.overloadpacket
        if packet in flop_registry:
            count = flop_registry[packet](*args, **kwargs, out_val=out)
        elif packet in ACCUMULATIONS:
            count = _numel(args[0])
        elif torch.Tag.pointwise in func.tags and packet not in NOT_ARITHMETIC:
            count = _numel(out)
        else:
            count = 0
        if count:
            self.total += int(count)
            name = packet.__name__
            self.by_operation[name] = self.by_operation.get(name, 0) + int(count)
        return out
