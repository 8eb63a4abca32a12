"""Held out. A recurrent sequence-to-sequence model: 2-layer LSTM encoder and decoder (hidden
512, embeddings 256, vocabularies 16000) with teacher forcing, batch 32, Adam, 4 steps whose
source and target lengths differ (bucketed batches: 24/30, 40/36, 17/21, 33/40 tokens)."""
import _recorder
import torch

VOCAB, EMBED, HIDDEN, LAYERS, BATCH = 16000, 256, 512, 2, 32
LENGTHS = [(24, 30), (40, 36), (17, 21), (33, 40)]  # (source, target) of each step


class Seq2Seq(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.source_embed = torch.nn.Embedding(VOCAB, EMBED)
        self.target_embed = torch.nn.Embedding(VOCAB, EMBED)
        self.encoder = torch.nn.LSTM(EMBED, HIDDEN, LAYERS, batch_first=True)
        self.decoder = torch.nn.LSTM(EMBED, HIDDEN, LAYERS, batch_first=True)
        self.out = torch.nn.Linear(HIDDEN, VOCAB)

    def forward(self, source, target_in):
        _, state = self.encoder(self.source_embed(source))
        decoded, _ = self.decoder(self.target_embed(target_in), state)
        return self.out(decoded)


def workload():
    model = Seq2Seq()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for source_length, target_length in LENGTHS:
        source = torch.randint(0, VOCAB, (BATCH, source_length))
        target = torch.randint(0, VOCAB, (BATCH, target_length + 1))
        logits = model(source, target[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), target[:, 1:].flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


_recorder.run(workload)
