"""Held out. A CNN serving images of varying size: torchvision's MobileNetV3-Large in eval mode
under no_grad, answering 16 requests of different batch x resolution (1 to 16 images, 160 to
320 pixels square), keeping each request's top-5 classes."""
import _recorder
import torch
import torchvision

# (batch, resolution) of each request, in arrival order.
REQUESTS = [(1, 224), (8, 224), (4, 320), (16, 160), (2, 288), (1, 320), (12, 192), (6, 256),
            (3, 224), (16, 224), (1, 160), (5, 288), (10, 256), (2, 192), (7, 320), (4, 160)]


def workload():
    model = torchvision.models.mobilenet_v3_large()
    model.eval()
    with torch.no_grad():
        for batch, resolution in REQUESTS:
            images = torch.randn(batch, 3, resolution, resolution)
            top5 = model(images).topk(5).indices
            del images, top5


_recorder.run(workload)
