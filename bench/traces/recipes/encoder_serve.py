"""An encoder serving requests of varying size: a BERT-base-shaped nn.TransformerEncoder
(12 layers, d=768, 12 heads, feed-forward 3072, vocabulary 30522) in eval mode under no_grad,
answering 12 requests of different batch x length (padding masks for the padded ones), and
returning the pooled first token of each."""
import _recorder
import torch

D_MODEL, LAYERS, HEADS, FF, VOCAB = 768, 12, 12, 3072, 30522
# (batch, length) of each request, in arrival order: short chats, long documents, bursts.
REQUESTS = [(1, 128), (8, 64), (4, 384), (2, 512), (16, 32), (1, 17), (6, 200), (3, 300),
            (12, 96), (1, 512), (5, 150), (2, 45)]


def workload():
    embed = torch.nn.Embedding(VOCAB, D_MODEL)
    positions = torch.nn.Embedding(512, D_MODEL)
    layer = torch.nn.TransformerEncoderLayer(D_MODEL, HEADS, FF, batch_first=True)
    encoder = torch.nn.TransformerEncoder(layer, LAYERS)
    for module in (embed, positions, encoder):
        module.eval()
    with torch.no_grad():
        for batch, length in REQUESTS:
            tokens = torch.randint(0, VOCAB, (batch, length))
            lengths = torch.randint(length // 2, length + 1, (batch,))
            lengths[0] = length
            padding = torch.arange(length)[None, :] >= lengths[:, None]
            hidden = embed(tokens) + positions(torch.arange(length))[None]
            pooled = encoder(hidden, src_key_padding_mask=padding)[:, 0].clone()
            del tokens, lengths, padding, hidden, pooled


_recorder.run(workload)
