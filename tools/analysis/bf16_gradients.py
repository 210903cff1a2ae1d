#!/usr/bin/env python
"""How far the gradients of a bfloat16 mixed-precision training step are from float32's, part by part.

One training step of a segmentor config's model on one synthetic batch (random images, blocky label maps), from the
same weights and the same random draws (drop path, dropout), in float32 and then with the chosen parts under
bfloat16 autocast (as ``Bf16OptimWrapper`` runs them, float32 outputs handed on). For each group of parameters it
prints the relative error ``|g_bf16 - g_fp32| / |g_fp32|`` of the gradient. A control row rounds only the input
images to bfloat16 in a float32 step: what any bfloat16 input costs.

    python tools/analysis/bf16_gradients.py configs/demo/upernet_swin_t_demo.py --warmup 20
    python tools/analysis/bf16_gradients.py CONFIG --variants backbone decode_head,auxiliary_head all

``--warmup N`` first trains N float32 steps (the gradients of a freshly initialised model are not those of
training). ``--no-drop-path`` sets every stochastic-depth rate to 0 (bfloat16 and float32 draw different masks
from the same seed: bernoulli on a bfloat16 tensor is another stream, so the comparison would mostly measure the
masks). On a CPU without native bfloat16 the bfloat16 steps run in torch's generic kernels: slow (minutes for the
demo model), same numbers; ``tools/analysis/emulate_bf16.py tools/analysis/bf16_gradients.py ...`` runs them at
float32 speed with the numbers of native bfloat16 kernels.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

import torch

from mmswin.apis.errors import add_debug_argument

PARTS = ('backbone', 'neck', 'decode_head', 'auxiliary_head')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('config', help='an mmseg segmentor config (e.g. configs/demo/upernet_swin_t_demo.py)')
    parser.add_argument('--variants', nargs='+', default=['all', 'backbone', 'decode_head,auxiliary_head'],
                        help='which parts run in bfloat16, one variant per entry: comma-separated part names '
                             f'({", ".join(PARTS)}) or "all" (default: all, backbone, the heads)')
    parser.add_argument('--size', type=int, default=256, help='square image side (default 256)')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--warmup', type=int, default=0, help='float32 AdamW steps before measuring (default 0)')
    parser.add_argument('--no-drop-path', action='store_true', help='stochastic depth off (see above)')
    parser.add_argument('--seed', type=int, default=0)
    add_debug_argument(parser)
    return parser.parse_args(argv)


def synthetic_batch(model: torch.nn.Module, size: int, batch: int, num_classes: int,
                    gen: torch.Generator) -> dict[str, Any]:
    """A pre-processed batch: random uint8 images and label maps of three constant blocks each."""
    from mmengine.structures import PixelData

    from mmswin.apis import dummy_batch
    data = dummy_batch('mmseg', size, size, batch_size=batch)
    data['inputs'] = [torch.randint(0, 256, (3, size, size), generator=gen, dtype=torch.uint8) for _ in range(batch)]
    for sample in data['data_samples']:
        label = torch.empty(1, size, size, dtype=torch.long)
        classes = torch.randint(0, num_classes, (3,), generator=gen)
        label[:, :size // 2], label[:, size // 2:, :size // 3], label[:, size // 2:, size // 3:] = classes
        sample.gt_sem_seg = PixelData(data=label)
    return model.data_preprocessor(data, True)


def gradients(model: torch.nn.Module, data: dict[str, Any], bf16_parts: tuple[str, ...],
              seed: int) -> dict[str, torch.Tensor]:
    """The parameter gradients of one loss on ``data``, with ``bf16_parts`` under bfloat16 autocast."""
    from mmswin.engine.precision import mixed_precision

    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    with mixed_precision(_Parts(model, bf16_parts), 'cpu', torch.bfloat16 if bf16_parts else None):
        losses = model(**data, mode='loss')
    sum(value for key, value in losses.items() if 'loss' in key).backward()
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


class _Parts(torch.nn.Module):
    """A view of a model that shows :func:`mixed_precision` only the chosen dense parts."""

    def __init__(self, model: torch.nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        for name in names:
            if isinstance(getattr(model, name, None), torch.nn.Module):
                setattr(self, name, getattr(model, name))


def groups(names: list[str]) -> list[str]:
    """Parameter groups to report: the backbone's stages (or the backbone), then every other dense part."""
    stages = sorted({'.'.join(n.split('.')[:3]) for n in names if n.startswith('backbone.stages.')})
    heads = [p for p in PARTS[1:] if any(n.startswith(p + '.') for n in names)]
    return stages + ['backbone'] + heads


def relative_error(reference: dict[str, torch.Tensor], other: dict[str, torch.Tensor], prefix: str) -> float:
    keys = [k for k in reference if k.startswith(prefix + '.') or k == prefix]
    a = torch.cat([reference[k].flatten().double() for k in keys])
    b = torch.cat([other[k].flatten().double() for k in keys])
    return float((a - b).norm() / a.norm().clamp_min(1e-30))


def run(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mmswin.apis import build_model, load_config

    cfg = load_config(args.config, drop_pretrained=True)
    torch.manual_seed(args.seed)
    model = build_model(cfg).train()
    if args.no_drop_path:
        for module in model.modules():
            if hasattr(module, 'drop_prob'):
                module.drop_prob = 0.0
    num_classes = cfg.model.decode_head.num_classes
    gen = torch.Generator().manual_seed(args.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for _ in range(args.warmup):
        data = synthetic_batch(model, args.size, args.batch, num_classes, gen)
        losses = model(**data, mode='loss')
        optimizer.zero_grad()
        sum(value for key, value in losses.items() if 'loss' in key).backward()
        optimizer.step()
    data = synthetic_batch(model, args.size, args.batch, num_classes, gen)
    reference = gradients(model, data, (), args.seed)
    rows = []
    clean = data['inputs']
    data['inputs'] = clean.bfloat16().float()
    rows.append(('float32, images rounded to bfloat16', gradients(model, data, (), args.seed)))
    data['inputs'] = clean
    for variant in args.variants:
        parts = PARTS if variant == 'all' else tuple(p for p in variant.split(',') if p)
        unknown = set(parts) - set(PARTS)
        if unknown:
            from mmswin.apis.errors import ToolError
            raise ToolError(f'--variants: unknown part(s) {sorted(unknown)}; use {", ".join(PARTS)} or all')
        rows.append((f'bfloat16: {variant}', gradients(model, data, parts, args.seed)))
    names = groups(list(reference))
    print(f'# {args.config}: gradient relative error against float32, batch {args.batch} at {args.size}, '
          f'{args.warmup} float32 warm-up steps, drop path {"off" if args.no_drop_path else "on"}')
    print('| step | ' + ' | '.join(names) + ' |')
    print('| --- ' * (len(names) + 1) + '|')
    for label, grads in rows:
        print(f'| {label} | ' + ' | '.join(f'{relative_error(reference, grads, n):.3f}' for n in names) + ' |')
    return 0


def main(argv: list[str] | None = None) -> int:
    from mmswin.apis.errors import run_tool
    return run_tool(run, argv, prog='bf16_gradients')


if __name__ == '__main__':
    sys.exit(main())
