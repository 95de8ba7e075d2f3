"""U-Net and Attention U-Net (additive attention gates on the skip connections, seed_004).

Both return LOGITS ``(N, 1, H, W)``; the exported ONNX graph wraps them with a
sigmoid (:class:`WithSigmoid`).  ``H`` and ``W`` must be multiples of ``2**depth``.
"""

from __future__ import annotations

import torch
from torch import nn

ARCHITECTURES = ("unet", "attention_unet")


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, dropout: float = 0.0):
        super().__init__()
        layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                  nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


class AttentionGate(nn.Module):
    """Additive soft attention (Oktay et al. 2018; Abraham & Khan 2019): ``x * sigmoid(psi(relu(Wg g + Wx x)))``."""

    def __init__(self, gate_channels: int, skip_channels: int, inter_channels: int):
        super().__init__()
        self.wg = nn.Sequential(nn.Conv2d(gate_channels, inter_channels, 1, bias=False), nn.BatchNorm2d(inter_channels))
        self.wx = nn.Sequential(nn.Conv2d(skip_channels, inter_channels, 1, bias=False), nn.BatchNorm2d(inter_channels))
        self.psi = nn.Sequential(nn.Conv2d(inter_channels, 1, 1), nn.BatchNorm2d(1), nn.Sigmoid())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, g, x):
        return x * self.psi(self.relu(self.wg(g) + self.wx(x)))


class UNet(nn.Module):
    """U-Net: ``depth`` down-sampling levels, ``base_filters * 2**level`` filters, transposed-conv up-sampling."""

    def __init__(self, in_channels: int, base_filters: int = 16, depth: int = 3, out_channels: int = 1,
                 attention: bool = False, dropout: float = 0.0):
        super().__init__()
        if depth < 1 or base_filters < 1 or in_channels < 1:
            raise ValueError("in_channels, base_filters and depth must be positive")
        self.config = {"in_channels": in_channels, "base_filters": base_filters, "depth": depth,
                       "out_channels": out_channels, "attention": attention, "dropout": dropout}
        f = [base_filters * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        cin = in_channels
        for i in range(depth):
            self.down.append(ConvBlock(cin, f[i]))
            cin = f[i]
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = ConvBlock(f[depth - 1], f[depth], dropout)
        self.up = nn.ModuleList()
        self.gates = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in reversed(range(depth)):
            self.up.append(nn.ConvTranspose2d(f[i + 1], f[i], 2, stride=2))
            self.gates.append(AttentionGate(f[i], f[i], max(f[i] // 2, 1)) if attention else nn.Identity())
            self.dec.append(ConvBlock(2 * f[i], f[i]))
        self.head = nn.Conv2d(f[0], out_channels, 1)
        self.attention = attention
        self.depth = depth

    def forward(self, x):
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, gate, dec, skip in zip(self.up, self.gates, self.dec, reversed(skips)):
            x = up(x)
            if self.attention:
                skip = gate(x, skip)
            x = dec(torch.cat([x, skip], dim=1))
        return self.head(x)


class AttentionUNet(UNet):
    def __init__(self, in_channels: int, base_filters: int = 16, depth: int = 3, out_channels: int = 1,
                 dropout: float = 0.0):
        super().__init__(in_channels, base_filters, depth, out_channels, attention=True, dropout=dropout)


class CalibratedLogits(nn.Module):
    """Platt-scaled logits ``a * model(x) + b`` (:mod:`training.calibration`); wrapped by :class:`WithSigmoid`
    on export, the graph's output is the calibrated probability."""

    def __init__(self, model: nn.Module, a: float, b: float):
        super().__init__()
        self.model = model
        self.config = getattr(model, "config", {})
        self.register_buffer("a", torch.tensor(float(a)))
        self.register_buffer("b", torch.tensor(float(b)))

    def forward(self, x):
        return self.a * self.model(x) + self.b


class WithSigmoid(nn.Module):
    """The exported graph: probabilities, not logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return torch.sigmoid(self.model(x))


def build_model(arch: str, in_channels: int, base_filters: int = 16, depth: int = 3, dropout: float = 0.0) -> UNet:
    if arch == "unet":
        return UNet(in_channels, base_filters, depth, dropout=dropout)
    if arch == "attention_unet":
        return AttentionUNet(in_channels, base_filters, depth, dropout=dropout)
    raise ValueError(f"architecture must be one of {ARCHITECTURES}, not {arch!r}")


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
