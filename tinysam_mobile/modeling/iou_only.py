"""The mask decoder's IoU predictions alone, for many prompts on one image without a mask input.

Everything mode decodes hundreds of prompts on one image and keeps only masks whose predicted IoU
passes a threshold; most do not, and the IoU head reads the IoU token alone. This computes those IoUs
without materialising any prompt's image tokens (h * w of them, 4096 x 256 at 1024 input), which is what
the plain decoder spends its time on:

- The image side the prompts start from is shared (embedding + the no-mask embedding, positional
  encoding), so every projection of it is computed once per image.
- A two-way block changes the image tokens by attention over the prompt's few tokens (7 for a click:
  IoU, 4 mask, point, padding), i.e. by a per-position combination of heads x tokens = 56 vectors, then
  applies a LayerNorm. So after block 1 a prompt's image tokens are  r_i * S_i + F_i @ W + beta  and
  after block 2 of the same form with 112 coefficients: a shared matrix S scaled per position by the
  LayerNorm factor r, plus per-prompt coefficients F on per-prompt vectors W. Products with weights
  become shared products plus products of the small factors; LayerNorm variances are quadratic forms
  of F.

The arithmetic is the plain decoder's, re-associated (linear maps distributed over sums, the variance
expanded), so the IoUs agree with TinySam.decode to float32 rounding (tests/test_everything.py measures
it); the masks themselves still come from TinySam.decode.
"""

import torch

from .mask_decoder import TINYSAM_TOKENS
from .tinysam import TinySam


def _center(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(-1, keepdim=True)


def _keys_by_head(x: torch.Tensor, heads: int) -> torch.Tensor:
    """Shared (N, C) -> (H, C/H, N): right operand of per-head token . image-token products."""
    n, c = x.shape
    return x.view(n, heads, c // heads).permute(1, 2, 0).contiguous()


def _values_by_head(x: torch.Tensor, heads: int) -> torch.Tensor:
    """Shared (N, C) -> (H, N, C/H): right operand of attention-weighted sums over image tokens."""
    n, c = x.shape
    return x.view(n, heads, c // heads).transpose(0, 1).contiguous()


def _split(x: torch.Tensor, heads: int) -> torch.Tensor:
    """Prompt tokens (B, T, C) -> (B, H, T, C/H)."""
    b, t, c = x.shape
    return x.view(b, t, heads, c // heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


def _per_head(q: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
    """q (B, H, T, D) . shared (H, D, N) -> (B, H, T, N), one matrix product per head over all prompts."""
    b, h, t, d = q.shape
    return torch.bmm(q.transpose(0, 1).reshape(h, b * t, d), shared).view(h, b, t, -1).transpose(0, 1)


def _attend(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Attention of q (B, H, T, D), pre-scaled, on shared keys (H, D, N) and values (H, N, D) -> (B, H, T, D),
    head-major throughout (no copies of the (B, H, T, N) weights)."""
    b, h, t, d = q.shape
    logits = torch.bmm(q.transpose(0, 1).reshape(h, b * t, d), keys)
    return torch.bmm(logits.softmax(-1), values).view(h, b, t, -1).transpose(0, 1)


def _weighted(a: torch.Tensor, factor: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
    """sum_n a[b, h, t, n] * factor[b, 0, 0, n] * shared[h, n, :]: (B, H, T, N), (H, N, D) -> (B, H, T, D).
    The product is written head-major, as the per-head matrix product reads it."""
    b, h, t, n = a.shape
    scaled = torch.empty(h, b, t, n)
    torch.mul(a, factor, out=scaled.transpose(0, 1))
    return torch.bmm(scaled.view(h, b * t, n), shared).view(h, b, t, -1).transpose(0, 1)


def _mixing(w: torch.Tensor, q: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Rows of w (B, M, C) through a projection weight (H*D, C), dotted per head with q (B, H, T, D):
    (B, H*T, M), the coefficients that turn F (B, M, N) into the attention logits' low-rank term."""
    b, m, _ = w.shape
    _, h, t, d = q.shape
    return torch.einsum("bmhd,bhtd->bhtm", (w @ weight.T).view(b, m, h, d), q).reshape(b, h * t, m)


def _output_columns(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """out_proj weight (C, H*D) -> (H, D, C): head h's value vectors v map to v @ result[h]."""
    c, hd = weight.shape
    return weight.view(c, heads, hd // heads).permute(1, 2, 0).contiguous()


class IouOnlyDecoder:
    """IoU predictions (B, 3) of TinySam.decode for prompts on one image embedding, mask input absent
    (has_mask_input 0, as in everything mode). Build once per image; call with batches of prompts."""

    @torch.inference_mode()
    def __init__(self, model: TinySam, image_embedding: torch.Tensor) -> None:
        """image_embedding (1, 256, h, w)."""
        self.model = model
        prompt_encoder, transformer = model.prompt_encoder, model.mask_decoder.transformer
        first, second = transformer.layers
        self.heads = heads = first.cross_attn_token_to_image.num_heads
        # The image tokens every prompt starts from, as rows (N, C).
        no_mask = prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        keys = (image_embedding + no_mask).flatten(2)[0].T.contiguous()
        pe = prompt_encoder.dense_pe().flatten(2)[0].T.contiguous()

        # Block 1 sees the shared image tokens: its image-side projections are computed once.
        t2i, i2t = first.cross_attn_token_to_image, first.cross_attn_image_to_token
        self.k1 = _keys_by_head(t2i.k_proj(keys + pe), heads)
        self.v1 = _values_by_head(t2i.v_proj(keys), heads)
        self.q1 = _keys_by_head(i2t.q_proj(keys + pe), heads)
        # keys1 = norm4(keys + out_bias + A1 @ U1) = r * S + F1 @ W1 + beta1, where C = centred(keys + out_bias),
        # S = gamma1 * C, r = 1 / std per position, F1 = r * A1 and W1 = gamma1 * centred(U1) per prompt.
        centred = _center(keys + i2t.out_proj.bias)
        self.norm_c = (centred * centred).sum(-1)
        out_weight1 = i2t.out_proj.weight
        self.out1 = _output_columns(out_weight1, heads)
        self.c_out1 = _keys_by_head(centred @ out_weight1, heads)  # C . (rows of U1), per head
        gamma1, beta1 = first.norm4.weight, first.norm4.bias
        shared = gamma1 * centred  # S

        # Block 2 sees keys1: projections of S and of the constant part, per head.
        t2i, i2t = second.cross_attn_token_to_image, second.cross_attn_image_to_token
        self.s_k2 = _keys_by_head(shared @ t2i.k_proj.weight.T, heads)
        self.c_k2 = _keys_by_head(t2i.k_proj(beta1 + pe), heads)
        self.s_v2 = _values_by_head(shared @ t2i.v_proj.weight.T, heads)
        self.c_v2 = t2i.v_proj(beta1).view(heads, -1)
        self.s_q2 = _keys_by_head(shared @ i2t.q_proj.weight.T, heads)
        self.c_q2 = _keys_by_head(i2t.q_proj(beta1 + pe), heads)
        self.out2 = _output_columns(i2t.out_proj.weight, heads)
        # keys2 = norm4(keys1 + out_bias + A3 @ U3); centred: r * Sc + e + F2 @ W2.
        shared_c = _center(shared)
        self.e = _center(beta1 + i2t.out_proj.bias)
        self.norm_sc, self.sc_e, self.norm_e = (shared_c * shared_c).sum(-1), shared_c @ self.e, self.e @ self.e
        self.sc_out1 = _keys_by_head(_center(gamma1 * shared_c) @ out_weight1, heads)
        self.sc_out2 = _keys_by_head(shared_c @ i2t.out_proj.weight, heads)

        # Final token -> image attention on keys2 = r2 * (r * gamma2 Sc + gamma2 e + F2 @ (gamma2 W2)) + beta2.
        final = transformer.final_attn_token_to_image
        gamma2, beta2 = second.norm4.weight, second.norm4.bias
        shared2 = gamma2 * shared_c
        self.s_k3 = _keys_by_head(shared2 @ final.k_proj.weight.T, heads)
        self.e_k3 = ((gamma2 * self.e) @ final.k_proj.weight.T).view(heads, -1)
        self.c_k3 = _keys_by_head(final.k_proj(beta2 + pe), heads)
        self.s_v3 = _values_by_head(shared2 @ final.v_proj.weight.T, heads)
        self.e_v3 = ((gamma2 * self.e) @ final.v_proj.weight.T).view(heads, -1)
        self.c_v3 = final.v_proj(beta2).view(heads, -1)
        self.gamma1, self.gamma2 = gamma1, gamma2

    @torch.inference_mode()
    def __call__(self, point_coords: torch.Tensor, point_labels: torch.Tensor) -> torch.Tensor:
        """point_coords (B, P, 2) in the input frame, point_labels (B, P) -> IoU predictions (B, 3)."""
        decoder = self.model.mask_decoder
        transformer = decoder.transformer
        first, second = transformer.layers
        heads = self.heads
        sparse = self.model.prompt_encoder.embed_points(point_coords, point_labels)
        batch = sparse.shape[0]
        output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], 0)
        tokens_pe = torch.cat([output_tokens.unsqueeze(0).expand(batch, -1, -1), sparse], 1)
        n_tokens, dim = tokens_pe.shape[1:]
        n_image, m = self.norm_c.shape[0], heads * n_tokens
        # Applied to the small per-prompt operand (queries; keys in image -> token attention) instead of the
        # logits: one pass less, and exact for TinySAM's head size 16 (a power of two).
        scale = self.k1.shape[1] ** -0.5

        # Block 1: token -> image attention on the shared image tokens.
        tokens = first.norm1(first.self_attn(tokens_pe, tokens_pe, tokens_pe))
        attn = first.cross_attn_token_to_image
        q = _split(attn.q_proj(tokens + tokens_pe), heads) * scale
        out = _attend(q, self.k1, self.v1)
        tokens = first.norm2(tokens + attn.out_proj(_merge(out)))
        tokens = first.norm3(tokens + first.mlp(tokens))
        # Block 1: image -> token attention; A1 (B, H, T, N) over the T tokens, U1 its value rows.
        attn = first.cross_attn_image_to_token
        k, v1 = _split(attn.k_proj(tokens + tokens_pe), heads) * scale, _split(attn.v_proj(tokens), heads)
        a1 = _per_head(k, self.q1).softmax(2).reshape(batch, m, n_image)
        u1 = _center((v1 @ self.out1).reshape(batch, m, dim))
        cross = (a1.view(batch, heads, n_tokens, n_image) * _per_head(v1, self.c_out1)).sum((1, 2))
        quad = (a1 * ((u1 @ u1.transpose(1, 2)) @ a1)).sum(1)
        r = torch.rsqrt((self.norm_c + 2 * cross + quad) / dim + first.norm4.eps)  # (B, N)
        f2 = torch.empty(batch, 2 * m, n_image)  # [F1, A3]
        f1 = torch.mul(a1, r[:, None], out=f2[:, :m])
        w1 = u1 * self.gamma1
        r_b = r[:, None, None]

        # Block 2: token -> image attention on keys1.
        queries = tokens + tokens_pe
        tokens = second.norm1(tokens + second.self_attn(queries, queries, tokens))
        attn = second.cross_attn_token_to_image
        q = _split(attn.q_proj(tokens + tokens_pe), heads) * scale
        logits = torch.bmm(_mixing(w1, q, attn.k_proj.weight), f1).view(batch, heads, n_tokens, n_image)
        logits.addcmul_(r_b, _per_head(q, self.s_k2)).add_(_per_head(q, self.c_k2))
        a2 = logits.softmax(-1)
        a2_f1 = torch.bmm(a2.view(batch, m, n_image), f1.transpose(1, 2)).view(batch, heads, n_tokens, m)
        w1_v = (w1 @ attn.v_proj.weight.T).view(batch, m, heads, -1)
        out = (_weighted(a2, r_b, self.s_v2) + torch.einsum("bhtm,bmhd->bhtd", a2_f1, w1_v)
               + self.c_v2[:, None])
        tokens = second.norm2(tokens + attn.out_proj(_merge(out)))
        tokens = second.norm3(tokens + second.mlp(tokens))
        # Block 2: image -> token attention; keys2's LayerNorm factor r2.
        attn = second.cross_attn_image_to_token
        k, v3 = _split(attn.k_proj(tokens + tokens_pe), heads) * scale, _split(attn.v_proj(tokens), heads)
        logits = torch.bmm(_mixing(w1, k, attn.q_proj.weight), f1).view(batch, heads, n_tokens, n_image)
        logits.addcmul_(r_b, _per_head(k, self.s_q2)).add_(_per_head(k, self.c_q2))
        a3 = f2[:, m:]
        a3.view(batch, heads, n_tokens, n_image).copy_(logits.softmax(2))
        w2 = torch.cat([_center(w1), _center((v3 @ self.out2).reshape(batch, m, dim))], 1)
        cross = ((f1.view(batch, heads, n_tokens, n_image) * _per_head(v1, self.sc_out1)).sum((1, 2))
                 + (a3.view(batch, heads, n_tokens, n_image) * _per_head(v3, self.sc_out2)).sum((1, 2)))
        # F2 G F2 with G = W2 W2^T symmetric: F1 (G11 F1 + 2 G12 A3) + A3 G22 A3.
        gram = w2 @ w2.transpose(1, 2)
        upper = torch.cat([gram[:, :m, :m], 2 * gram[:, :m, m:]], 2)
        quad = (f1 * torch.bmm(upper, f2)).sum(1) + (a3 * torch.bmm(gram[:, m:, m:], a3)).sum(1)
        linear = torch.bmm((w2 @ self.e)[:, None], f2)[:, 0]
        var2 = (r * r * self.norm_sc + 2 * r * self.sc_e + self.norm_e + 2 * r * cross + 2 * linear + quad) / dim
        r2 = torch.rsqrt(var2 + second.norm4.eps)

        # Final token -> image attention, for the IoU token only.
        attn = transformer.final_attn_token_to_image
        q = _split(attn.q_proj((tokens + tokens_pe)[:, :1]), heads) * scale  # (B, H, 1, D)
        w2 = w2 * self.gamma2
        r2_b, rr_b = r2[:, None], (r2 * r)[:, None]
        logits = torch.bmm(_mixing(w2, q, attn.k_proj.weight), f2)  # (B, H, N)
        logits.add_((q[:, :, 0] * self.e_k3).sum(-1, keepdim=True)).mul_(r2_b)
        logits.addcmul_(rr_b, _per_head(q, self.s_k3)[:, :, 0]).add_(_per_head(q, self.c_k3)[:, :, 0])
        a4 = logits.softmax(-1) * r2_b
        w2_v = (w2 @ attn.v_proj.weight.T).view(batch, 2 * m, heads, -1)
        out = (_weighted(a4[:, :, None], r_b, self.s_v3)[:, :, 0] + a4.sum(-1, keepdim=True) * self.e_v3
               + torch.einsum("bhm,bmhd->bhd", torch.bmm(a4, f2.transpose(1, 2)), w2_v) + self.c_v3)
        iou_token = transformer.norm_final_attn(tokens[:, 0] + attn.out_proj(out.reshape(batch, -1)))
        return decoder.iou_prediction_head(iou_token)[:, TINYSAM_TOKENS]
