"""Held out. Image segmentation: a U-Net built from torch.nn (4 down and 4 up levels, 32 to 512
channels, batch norm, skip connections concatenated), batch 4 x 3x192x192, 2 classes, Adam,
3 steps."""
import _recorder
import torch
from torch import nn


def double_conv(inputs, outputs):
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, padding=1), nn.BatchNorm2d(outputs),
                         nn.ReLU(inplace=True), nn.Conv2d(outputs, outputs, 3, padding=1),
                         nn.BatchNorm2d(outputs), nn.ReLU(inplace=True))


class UNet(nn.Module):
    def __init__(self, widths=(32, 64, 128, 256, 512), classes=2):
        super().__init__()
        self.down = nn.ModuleList()
        inputs = 3
        for width in widths:
            self.down.append(double_conv(inputs, width))
            inputs = width
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(inputs, width, 2, stride=2))
            self.merge.append(double_conv(2 * width, width))
            inputs = width
        self.head = nn.Conv2d(inputs, classes, 1)

    def forward(self, x):
        skips = []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else nn.functional.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


def workload():
    model = UNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):
        images = torch.randn(4, 3, 192, 192)
        masks = torch.randint(0, 2, (4, 192, 192))
        loss = nn.functional.cross_entropy(model(images), masks)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


_recorder.run(workload)
