"""Activation checkpointing with gradient accumulation: a GPT-style causal language model built
from torch.nn (6 layers, d=512, 8 heads, vocabulary 16000), every block under
torch.utils.checkpoint (recomputed in backward), 3 micro-batches of 4 x 128 tokens accumulated
per AdamW step, 3 steps."""
import _recorder
import torch
import torch.utils.checkpoint

D_MODEL, LAYERS, HEADS, VOCAB, BATCH, LENGTH, MICRO_BATCHES = 512, 6, 8, 16000, 4, 128, 3


class CheckpointedLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, D_MODEL)
        self.positions = torch.nn.Embedding(LENGTH, D_MODEL)
        self.blocks = torch.nn.ModuleList(
            torch.nn.TransformerEncoderLayer(D_MODEL, HEADS, 4 * D_MODEL, batch_first=True,
                                             norm_first=True, activation="gelu")
            for _ in range(LAYERS))
        self.norm = torch.nn.LayerNorm(D_MODEL)
        self.register_buffer("mask", torch.triu(torch.full((LENGTH, LENGTH), float("-inf")), 1))

    def forward(self, tokens):
        hidden = self.embed(tokens) + self.positions(torch.arange(tokens.shape[1]))[None]
        for block in self.blocks:
            hidden = torch.utils.checkpoint.checkpoint(block, hidden, self.mask,
                                                       use_reentrant=False)
        return self.norm(hidden) @ self.embed.weight.t()


def workload():
    model = CheckpointedLM()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for _ in range(3):
        for _ in range(MICRO_BATCHES):
            tokens = torch.randint(0, VOCAB, (BATCH, LENGTH + 1))
            logits = model(tokens[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1),
                                                     tokens[:, 1:].flatten())
            (loss / MICRO_BATCHES).backward()
        optimizer.step()
        optimizer.zero_grad()


_recorder.run(workload)
