"""Held out. A CNN unlike ResNet: torchvision's DenseNet-121 (each layer concatenates all
earlier feature maps of its block), batch 8 x 3x160x160, SGD with momentum, 3 steps."""
import _recorder
import torch
import torchvision


def workload():
    model = torchvision.models.densenet121()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for _ in range(3):
        images = torch.randn(8, 3, 160, 160)
        labels = torch.randint(0, 1000, (8,))
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


_recorder.run(workload)
