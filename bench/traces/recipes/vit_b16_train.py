"""Vision transformer training: torchvision's ViT-B/16 (86 M parameters), batch 2 x 3x224x224,
AdamW, 3 steps. The model and optimizer are built inside the recording."""
import _recorder
import torch
import torchvision


def workload():
    model = torchvision.models.vit_b_16()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for _ in range(3):
        images = torch.randn(2, 3, 224, 224)
        labels = torch.randint(0, 1000, (2,))
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


_recorder.run(workload)
