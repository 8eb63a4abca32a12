"""Training under bf16 autocast: a GPT-style causal language model built from torch.nn
(6 layers, d=512, 8 heads, vocabulary 16000, tied embeddings), batch 4 x 128 tokens, AdamW
with fp32 master weights, forward and loss under torch.autocast("cpu", dtype=torch.bfloat16),
3 steps."""
import _recorder
import torch

D_MODEL, LAYERS, HEADS, VOCAB, BATCH, LENGTH = 512, 6, 8, 16000, 4, 128


class CausalLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, D_MODEL)
        self.positions = torch.nn.Embedding(LENGTH, D_MODEL)
        layer = torch.nn.TransformerEncoderLayer(D_MODEL, HEADS, 4 * D_MODEL, batch_first=True,
                                                 norm_first=True, activation="gelu")
        self.blocks = torch.nn.TransformerEncoder(layer, LAYERS)
        self.norm = torch.nn.LayerNorm(D_MODEL)
        self.register_buffer("mask", torch.triu(torch.full((LENGTH, LENGTH), float("-inf")), 1))

    def forward(self, tokens):
        hidden = self.embed(tokens) + self.positions(torch.arange(tokens.shape[1]))[None]
        hidden = self.norm(self.blocks(hidden, mask=self.mask))
        return hidden @ self.embed.weight.t()


def workload():
    model = CausalLM()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for _ in range(3):
        tokens = torch.randint(0, VOCAB, (BATCH, LENGTH + 1))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(tokens[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(),
                                                     tokens[:, 1:].flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


_recorder.run(workload)
