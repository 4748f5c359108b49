#!/usr/bin/env python3
"""expected_perf.py - what a FLUX.1-dev step at 1024 px should cost on H100s,
on paper: FLOPs per step (GEMMs + attention), bytes per Ulysses all-to-all,
and the expected step time at a given fraction of the bf16 dense peak plus
communication over NVLink, beside xDiT's published per-step times.
Prints Markdown. Plain python3, no dependencies.

    python3 scripts/expected_perf.py [--px 1024] [--mfu 0.6] [--link-gbs 360]

Every count follows the implementation (src/ts_dit.c, kernels/ts_dit_cuda.c):
the joint sequence is padded to a multiple of the degree k; each attention
does 3 all-to-alls (q, k, v) and 1 back, each rank sending k-1 of its k blocks
of [S_pad/k, hidden/k] elements; one velocity all-gather per step; the
exchanged elements are float32 (b = 4) in this implementation, bf16 (b = 2) in
xDiT.
"""
import argparse
import os
import re
import sys

# FLUX.1-dev, as the "flux-dev" preset of src/ts_dit.c (checked against the
# source below when it is readable).
FLUX_DEV = dict(hidden=3072, heads=24, head_dim=128, n_double=19, n_single=38, mlp_ratio=4,
                latent_channels=16, patch=2, vae_factor=8, txt_tokens=512, ctx_dim=4096,
                pooled_dim=768, time_dim=256, guidance_embed=1)

H100_BF16_DENSE_TFLOPS = 989.0  # H100 SXM spec sheet, bf16 dense tensor core
H100_FP32_TFLOPS = 67.0         # H100 SXM spec sheet, fp32 CUDA cores (non-tensor)
H100_HBM_TBS = 3.35             # H100 SXM spec sheet, HBM3
NVLINK_GBS = 900.0              # H100 SXM NVLink 4, bidirectional per GPU (450 GB/s each way)

# xDiT docs/performance/flux.md: FLUX.1-dev 1024 px, 28 steps on H100, whole
# generation in seconds (eager, compiled) by Ulysses degree.
XDIT_28 = {1: (6.71, 4.30), 2: (4.38, 2.68), 4: (4.24, 1.63)}
# The paper's Table 1: TFLOP per image (FLUX.1-dev) by resolution.
PAPER_TFLOP_PER_IMAGE = {256: 556, 512: 1388, 1024: 5046, 2048: 24965}


def check_preset(path):
    """The flux-dev preset as written in src/ts_dit.c, or None."""
    try:
        src = open(path).read()
    except OSError:
        return None
    m = re.search(r'strcmp\(name, "flux-dev"\) == 0\) \{(.*?)\}', src, re.S)
    if not m:
        return None
    found = dict((k, int(v)) for k, v in re.findall(r'cfg->(\w+) = (\d+)', m.group(1)))
    return {k: v for k, v in found.items() if k in FLUX_DEV and FLUX_DEV[k] != v}


def gemm(rows, k_in, n_out):
    return 2.0 * rows * k_in * n_out


def flops_per_step(c, px, degree=1):
    """FLOPs of one step on one rank at degree k (k = 1: the whole step)."""
    h, mlp, hd = c["hidden"], c["mlp_ratio"] * c["hidden"], c["head_dim"]
    n_img = (px // (c["vae_factor"] * c["patch"])) ** 2
    s_tot = c["txt_tokens"] + n_img
    s_pad = -(-s_tot // degree) * degree
    s_loc = s_pad // degree
    cp = c["latent_channels"] * c["patch"] ** 2
    heads_loc = c["heads"] // degree
    out = {}
    # double blocks: per token qkv (3h) + proj (h) + mlp (4h + 4h), txt and img weights alike
    out["double-block GEMMs"] = c["n_double"] * (gemm(s_loc, h, 3 * h) + gemm(s_loc, h, h)
                                                 + gemm(s_loc, h, mlp) + gemm(s_loc, mlp, h))
    # single blocks: linear1 (h -> 3h + mlp), linear2 (h + mlp -> h)
    out["single-block GEMMs"] = c["n_single"] * (gemm(s_loc, h, 3 * h + mlp) + gemm(s_loc, h + mlp, h))
    # attention: q k^T and p v over all S_pad queries x S_tot keys, this rank's heads
    n_attn = c["n_double"] + c["n_single"]
    out["attention (QK^T + PV)"] = n_attn * 2 * 2.0 * s_pad * s_tot * hd * heads_loc
    # modulation (1 row each; replicated on every rank): 2 x 6h per double, 3h per single, 2h final
    out["modulation GEMMs (1 row)"] = (c["n_double"] * 2 * gemm(1, h, 6 * h)
                                       + c["n_single"] * gemm(1, h, 3 * h))
    emb = gemm(1, c["time_dim"], h) + gemm(1, h, h) + gemm(1, c["pooled_dim"], h) + gemm(1, h, h)
    if c["guidance_embed"]:
        emb += gemm(1, c["time_dim"], h) + gemm(1, h, h)
    # token-parallel embedders: txt_in over the T text rows, img_in and the
    # final linear over the N image rows, spread over the k ranks (average)
    out["embedders + final layer"] = (emb + gemm(1, h, 2 * h)
                                      + gemm(c["txt_tokens"] / degree, c["ctx_dim"], h)
                                      + gemm(n_img / degree, cp, h) + gemm(n_img / degree, h, cp))
    return out, dict(n_img=n_img, s_tot=s_tot, s_pad=s_pad, s_loc=s_loc)


def nongemm_bytes_per_step(c, s_loc):
    """HBM bytes of the float32 elementwise/norm/layout kernels of one step on
    one rank, in units of [s_loc, hidden] float32 tensors counted from
    kernels/ts_dit_cuda.c (reads + writes; two-pass norms read twice)."""
    u = s_loc * c["hidden"] * 4.0
    # double block: LN 3, modulate 2, stage 1.5, qkv bias 6, QK norm 4, RoPE 4,
    # pack 6, unpack 2, proj stage 1.5 + bias 2 + residual 3, LN 3, modulate 2,
    # stage 1.5, mlp0 bias 8, gelu+stage 6, mlp2 bias 2, residual 3
    dbl = 60.5
    # single block: LN 3, modulate 2, stage 1.5, linear1 bias 14, QK norm 4,
    # RoPE 4, pack 6, unpack 2, linear2 stage (5 read + 2.5 write) 7.5, bias 2, residual 3
    sgl = 49.0
    return (c["n_double"] * dbl + c["n_single"] * sgl) * u


def comm_bytes(c, px, k, b):
    """(formula per layer, exact per layer, exact per step) bytes one rank sends."""
    n_img = (px // (c["vae_factor"] * c["patch"])) ** 2
    s_tot = c["txt_tokens"] + n_img
    s_pad = -(-s_tot // k) * k
    s_loc = s_pad // k
    h = c["hidden"]
    formula = 4.0 * s_tot * h * b * (k - 1) / k ** 2
    # 4 all-to-alls, k - 1 blocks of [s_loc, h/k] leave the rank (its own block is a local copy)
    exact_layer = 4.0 * (k - 1) * s_loc * (h // k) * b
    cp = c["latent_channels"] * c["patch"] ** 2
    vel = (k - 1) * s_loc * cp * 4.0  # velocity all-gather, float32, once per step
    n_attn = c["n_double"] + c["n_single"]
    return formula, exact_layer, n_attn * exact_layer + vel


def fmt_t(x):
    return f"{x / 1e12:,.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--px", type=int, default=1024, help="square image side (default 1024)")
    ap.add_argument("--mfu", type=float, default=0.60, help="fraction of the bf16 dense peak (0.60)")
    ap.add_argument("--link-gbs", type=float, default=360.0,
                    help="effective all-to-all bandwidth per rank and direction, GB/s (360 = 80%% "
                         "of NVLink 4's 450 GB/s each way)")
    ap.add_argument("--hbm-eff", type=float, default=0.75, help="fraction of HBM bandwidth reached "
                    "by the elementwise kernels (0.75)")
    ap.add_argument("--attn-fp32-eff", type=float, default=0.25,
                    help="fraction of the fp32 CUDA-core peak the current (register-resident, "
                         "one query per thread) attention kernel reaches (0.25, a guess)")
    a = ap.parse_args()
    c = FLUX_DEV
    here = os.path.dirname(os.path.abspath(__file__))
    diff = check_preset(os.path.join(here, "..", "src", "ts_dit.c"))
    if diff:
        print(f"warning: src/ts_dit.c's flux-dev preset differs from this script: {diff}", file=sys.stderr)
    px = a.px
    peak = H100_BF16_DENSE_TFLOPS * 1e12
    eff = a.mfu * peak
    bw = a.link_gbs * 1e9

    f1, geo = flops_per_step(c, px, 1)
    total1 = sum(f1.values())
    print(f"## FLUX.1-dev, {px}x{px} px, one denoising step\n")
    print(f"Shapes (src/ts_dit.c preset \"flux-dev\"): hidden {c['hidden']} = {c['heads']} heads x "
          f"{c['head_dim']}, {c['n_double']} double + {c['n_single']} single blocks, MLP x{c['mlp_ratio']}, "
          f"{c['txt_tokens']} text + {geo['n_img']} image tokens = S {geo['s_tot']}.\n")
    print("| part | TFLOP per step | share |")
    print("|---|---:|---:|")
    for k_, v in f1.items():
        print(f"| {k_} | {fmt_t(v)} | {100 * v / total1:.1f}% |")
    print(f"| **total** | **{fmt_t(total1)}** | 100% |")
    if px in PAPER_TFLOP_PER_IMAGE:
        p = PAPER_TFLOP_PER_IMAGE[px]
        print(f"\nThe paper's Table 1 gives {p} TFLOP per {px} px image: {p / 28:.0f} TFLOP/step over 28 "
              f"steps, {p / 50:.0f} over 50. Our analytic count is {fmt_t(total1)} (x28 = "
              f"{total1 * 28 / 1e12:,.0f}); the paper does not say how it counts (its four "
              f"resolutions imply 54 to 68 of our steps per image, so not a fixed per-step formula).\n")

    print(f"## Ulysses all-to-all traffic per rank ({px} px, {c['n_double'] + c['n_single']} attention layers per step)\n")
    print("| k | one all-to-all, bf16 / ours fp32 (MB) | formula 4Shb(P-1)/P^2, b=2 (MB/layer) "
          "| ours exact, fp32 (MB/layer) | ours per step, fp32 (GB) | bf16 per step (GB) | time per step at "
          f"{a.link_gbs:.0f} GB/s, fp32 / bf16 (ms) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    comm_s = {}
    for k in (2, 4, 8):
        _, ex4, step4 = comm_bytes(c, px, k, 4)
        form2, _, step2 = comm_bytes(c, px, k, 2)
        comm_s[k] = (step4 / bw, step2 / bw)
        print(f"| {k} | {form2 / 4e6:.2f} / {ex4 / 4e6:.2f} | {form2 / 1e6:.1f} | {ex4 / 1e6:.1f} "
              f"| {step4 / 1e9:.2f} | {step2 / 1e9:.2f} | {1e3 * step4 / bw:.1f} / {1e3 * step2 / bw:.1f} |")
    print(f"\nOne all-to-all = what one rank sends in one of the four exchanges of an attention "
          f"layer, S h b (P-1)/P^2. "
          f"Ours = 3 all-to-alls (q, k, v) + 1 back per attention, k-1 blocks of [S_pad/k, hidden/k] "
          f"leaving each rank, plus one float32 velocity all-gather per step; with b = 2 it equals "
          f"the formula up to padding. NVLink 4: {NVLINK_GBS:.0f} GB/s bidirectional per GPU "
          f"= 450 GB/s each way; assumed effective {a.link_gbs:.0f} GB/s each way for NCCL "
          f"all-to-all (80%).\n")

    print(f"## Expected step time on H100 SXM ({px} px)\n")
    print(f"Compute at {100 * a.mfu:.0f}% of {H100_BF16_DENSE_TFLOPS:.0f} TFLOP/s bf16 dense = "
          f"{eff / 1e12:.0f} TFLOP/s; communication at {a.link_gbs:.0f} GB/s; \"serial\" adds them, "
          f"\"overlapped\" takes the larger.\n")
    print("| k | TFLOP per rank | compute (s) | all-to-all fp32 / bf16 (s) | step, serial fp32 (s) "
          "| step, overlapped bf16 (s) | xDiT compiled (s) | xDiT eager (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k in (1, 2, 4, 8):
        fk, _ = flops_per_step(c, px, k)
        tf = sum(fk.values())
        comp = tf / eff
        c4, c2 = comm_s.get(k, (0.0, 0.0))
        x = XDIT_28.get(k) if px == 1024 else None
        xc = f"{x[1] / 28:.3f}" if x else ("0.112 (U4xR2, 25 steps, 8 GPUs)" if k == 8 and px == 1024 else "-")
        xe = f"{x[0] / 28:.3f}" if x else "-"
        print(f"| {k} | {fmt_t(tf)} | {comp:.3f} | {c4:.4f} / {c2:.4f} | {comp + c4:.3f} "
              f"| {max(comp, c2):.3f} | {xc} | {xe} |")

    # The code as written: cuBLAS GEMMs at the same MFU, attention on fp32
    # CUDA cores, float32 elementwise kernels bound by HBM.
    gemm_fl = total1 - f1["attention (QK^T + PV)"]
    t_gemm = gemm_fl / eff
    t_attn = f1["attention (QK^T + PV)"] / (a.attn_fp32_eff * H100_FP32_TFLOPS * 1e12)
    t_elem = nongemm_bytes_per_step(c, geo["s_pad"]) / (a.hbm_eff * H100_HBM_TBS * 1e12)
    print(f"\nThe kernels as written today (k = 1): GEMMs {t_gemm:.3f} s (cuBLAS bf16 at {100 * a.mfu:.0f}%), "
          f"attention {t_attn:.3f} s (float32 CUDA cores at {100 * a.attn_fp32_eff:.0f}% of "
          f"{H100_FP32_TFLOPS:.0f} TFLOP/s), elementwise/norm/layout {t_elem:.3f} s "
          f"({nongemm_bytes_per_step(c, geo['s_pad']) / 1e9:.0f} GB of float32 traffic at "
          f"{100 * a.hbm_eff:.0f}% of {H100_HBM_TBS} TB/s): about {t_gemm + t_attn + t_elem:.2f} s per "
          f"step. The attention kernel is the gap to the {total1 / eff:.3f} s target.")


if __name__ == "__main__":
    main()
