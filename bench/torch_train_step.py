#!/usr/bin/env python3
"""Training speed of PyTorch and snnTorch on the network `spikeforge bench --train` times.

Same architecture notation subset (HxWxC input, nCk convolutions with `same` padding, MP2/AP2,
a last convolution with bias feeding global average pooling), same neuron (STBP LIF: hard reset,
decay tau, `u > vth`, rectangular surrogate of half-width a), BatchNorm after every hidden
convolution, Adam, batch, time steps and thread count. Prints and writes JSON rows.
"""
import argparse
import gzip
import json
import os
import re
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VTH, TAU, WIDTH = 0.75, 0.25, 0.5


class RectSpike(torch.autograd.Function):
    """Heaviside forward, STBP rectangular surrogate backward (on x = u - vth)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x > 0).float()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() < WIDTH).float()


class Lif(nn.Module):
    """Plain PyTorch LIF over T steps: u = tau*u*(1-o) + z_t, o = H(u - vth)."""

    def forward(self, z):  # z: [T, B, C, H, W]
        u = torch.zeros_like(z[0])
        o = torch.zeros_like(z[0])
        out = []
        for t in range(z.shape[0]):
            u = TAU * u * (1 - o) + z[t]
            o = RectSpike.apply(u - VTH)
            out.append(o)
        return torch.stack(out)


class SnnTorchLif(nn.Module):
    """The same neuron through snnTorch's Leaky (reset to zero)."""

    def __init__(self):
        super().__init__()
        import snntorch as snn

        self.leaky = snn.Leaky(beta=TAU, threshold=VTH, spike_grad=RectSpike.apply, reset_mechanism="zero")

    def forward(self, z):
        mem = self.leaky.init_leaky()
        out = []
        for t in range(z.shape[0]):
            spk, mem = self.leaky(z[t], mem)
            out.append(spk)
        return torch.stack(out)


class Net(nn.Module):
    def __init__(self, arch, time_steps, lif_cls):
        super().__init__()
        toks = arch.split("-")
        h, w, c = (int(v) for v in toks[0].split("x"))
        self.t = time_steps
        self.layers = nn.ModuleList()
        self.plan = []
        convs = [t for t in toks[1:] if "C" in t]
        for i, tok in enumerate(toks[1:]):
            m = re.fullmatch(r"(\d+)C(\d)[bi\d]*", tok)
            if m:
                n, k = int(m.group(1)), int(m.group(2))
                last = tok == convs[-1] and i == len(toks) - 2 - (1 if toks[-1] == "GAP" else 0)
                conv = nn.Conv2d(c, n, k, padding=(k - 1) // 2, bias=last)
                self.layers.append(conv)
                self.plan.append(("conv", len(self.layers) - 1))
                if not last:
                    self.layers.append(nn.BatchNorm2d(n))
                    self.plan.append(("bn", len(self.layers) - 1))
                    self.layers.append(lif_cls())
                    self.plan.append(("lif", len(self.layers) - 1))
                c = n
            elif tok in ("MP2", "AP2"):
                self.plan.append((tok, None))
            elif tok != "GAP":
                raise SystemExit(f"token {tok!r} is not supported by this script")
        self.scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, x):  # x: [B, C, H, W] in [0, 1]
        b = x.shape[0]
        first = True
        for kind, i in self.plan:
            if kind == "conv":
                if first:  # direct encoding: the first synaptic current is computed once
                    x = self.layers[i](x).unsqueeze(0).expand(self.t, -1, -1, -1, -1)
                    first = False
                else:
                    y = self.layers[i](x.flatten(0, 1))
                    x = y.view(self.t, b, *y.shape[1:])
            elif kind == "bn":
                y = self.layers[i](x.flatten(0, 1))
                x = y.view(self.t, b, *y.shape[1:])
            elif kind == "lif":
                x = self.layers[i](x)
            else:
                pool = F.max_pool2d if kind == "MP2" else F.avg_pool2d
                y = pool(x.flatten(0, 1), 2)
                x = y.view(self.t, b, *y.shape[1:])
        return x.mean(dim=(0, 3, 4)) * self.scale.exp()


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return torch.frombuffer(bytearray(data[4 + 4 * dims :]), dtype=torch.uint8).view(*shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="28x28x1-32C3-MP2-64C3-MP2-128C3-10C3-GAP")
    ap.add_argument("--time-steps", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epoch", action="store_true")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default="out/bench-torch.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    images = idx(os.path.join(a.data, "train-images-idx3-ubyte.gz")).float().div(255).unsqueeze(1)
    labels = idx(os.path.join(a.data, "train-labels-idx1-ubyte.gz")).long()
    rows = []
    for name, lif in (("pytorch", Lif), ("snntorch", SnnTorchLif)):
        try:
            net = Net(a.arch, a.time_steps, lif)
        except ImportError as e:
            print(f"{name}: skipped ({e})")
            continue
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def step(i):
            s = (i * a.batch) % (len(images) - a.batch)
            x, y = images[s : s + a.batch], labels[s : s + a.batch]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()

        times = []
        for i in range(a.steps + 3):
            t0 = time.perf_counter()
            step(i)
            if i >= 3:
                times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        epoch_s = None
        if a.epoch:
            t0 = time.perf_counter()
            for i in range(len(images) // a.batch):
                step(i)
            epoch_s = time.perf_counter() - t0
        row = {
            "framework": name,
            "version": torch.__version__,
            "arch": a.arch,
            "time_steps": a.time_steps,
            "batch": a.batch,
            "threads": a.threads,
            "step_ms_median": times[len(times) // 2],
            "step_ms_mean": sum(times) / len(times),
            "steps": len(times),
            "epoch_s": epoch_s,
            "epoch_images": len(images),
        }
        print(json.dumps(row))
        rows.append(row)
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
