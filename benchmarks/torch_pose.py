"""PyTorch side of the head-motion benchmark: paper 000's E_m and D_m at the reference sizes.

Run by `benchmarks/side_by_side.py` (needs the `bench` extra: `pip install -e .[bench]`, a CPU
torch wheel); prints one JSON object. Not part of the library: no module of `talkingjax`
imports torch.

The network is the one `talkingjax.models.head_motion` builds from `experiments/configs/pose.py`
(12.4 M parameters), written with PyTorch's own layers: E_m = 3 x 256 LSTM over the pose clip,
final (h, c) of every layer -> MLP 256-128-64-32 -> 16; D_m = 3 x 256 LSTM over the MFCC rows,
the 280 ms window convolution (28 rows, stride 4, 1024 channels), then the k=3 head
(1024 + 16 -> 512 -> 256, BatchNorm, ReLU) and a 1x1 conv to 6 values. As in talkingjax, the
first head conv is applied to the audio features once and to each of the three patterns
separately (the same linear map as one conv over the concatenation), so both sides do the same
arithmetic. The step is the joint phase's: Eq. 3 (rotation-matrix squared error summed over
frames), Eq. 4, Eq. 1 and Eq. 5 (margin 2), global-norm clipping, Adam.

  python benchmarks/torch_pose.py [--steps 3] [--batch 16] [--frames 300] [--speech_seconds 60]
      [--bfloat16]   # training step under torch.autocast("cpu", torch.bfloat16)
"""

import json

import pose_shapes
import torch
import torch_common
from torch import nn

WINDOW_ROWS = 28  # talkingjax.audio.WINDOW_ROWS: 280 ms of 100 Hz MFCC rows
ROWS_PER_FRAME = 4  # 25 fps
POSE_SCALE = 0.1


def rows_for_frames(frames: int) -> int:
    return (frames - 1) * ROWS_PER_FRAME + WINDOW_ROWS


class Encoder(nn.Module):
    def __init__(self, hidden=256, layers=3, mlp=(256, 128, 64, 32), k=16):
        super().__init__()
        self.lstm = nn.LSTM(6, hidden, layers, batch_first=True)
        widths = [2 * layers * hidden, *mlp]
        self.mlp = nn.Sequential(
            *[
                m
                for a, b in zip(widths[:-1], widths[1:], strict=True)
                for m in (nn.Linear(a, b), nn.ReLU())
            ],
            nn.Linear(widths[-1], k),
        )

    def forward(self, pose):  # [B, T, 6] -> [B, k]
        _, (h, c) = self.lstm(pose / POSE_SCALE)
        state = torch.cat([torch.stack([h[i], c[i]], 1) for i in range(h.shape[0])], 1)
        return self.mlp(state.reshape(pose.shape[0], -1))


class Decoder(nn.Module):
    def __init__(self, hidden=256, layers=3, window=1024, head=(512, 256), k=16):
        super().__init__()
        self.lstm = nn.LSTM(13, hidden, layers, batch_first=True)
        self.window_conv = nn.Conv1d(hidden, window, WINDOW_ROWS, stride=ROWS_PER_FRAME)
        self.head_in_audio = nn.Conv1d(window, head[0], 3, padding=1, bias=False)
        self.head_in_pattern = nn.Conv1d(k, head[0], 3, padding=1)
        self.norm0 = nn.BatchNorm1d(head[0], momentum=0.1)
        self.conv1 = nn.Conv1d(head[0], head[1], 3, padding=1)
        self.norm1 = nn.BatchNorm1d(head[1], momentum=0.1)
        self.out = nn.Conv1d(head[1], 6, 1)

    def forward(self, mfcc, patterns):  # [B, R, 13], [B, P, k] -> [B, P, F, 6]
        seq, _ = self.lstm(mfcc)
        feats = self.window_conv(seq.transpose(1, 2))  # [B, C, F]
        b, p, k = patterns.shape
        frames = feats.shape[-1]
        pat = patterns.reshape(b * p, k, 1).expand(b * p, k, frames)
        h = self.head_in_audio(feats).repeat_interleave(p, 0) + self.head_in_pattern(pat)
        h = torch.relu(self.norm0(h))
        h = torch.relu(self.norm1(self.conv1(h)))
        y = self.out(h) * POSE_SCALE  # [B * P, 6, F]
        return y.reshape(b, p, 6, frames).transpose(2, 3)


def euler_to_rotation(a):
    x, y, z = a[..., 0], a[..., 1], a[..., 2]
    cx, sx, cy, sy, cz, sz = x.cos(), x.sin(), y.cos(), y.sin(), z.cos(), z.sin()
    r0 = torch.stack([cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx], -1)
    r1 = torch.stack([sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx], -1)
    r2 = torch.stack([-sy, cy * sx, cy * cx], -1)
    return torch.stack([r0, r1, r2], -2)


def contrastive(a, p, n, margin=2.0):
    a, p, n = (v.reshape(v.shape[0], -1) for v in (a, p, n))
    d_pos = (a - p).square().sum(-1)
    d_neg = ((a - n).square().sum(-1) + 1e-12).sqrt()
    return (d_pos + (margin - d_neg).clamp(min=0).square()).mean()


def joint_loss(encoder, decoder, pose, mfcc):
    b, n, t, d = pose.shape
    x = encoder(pose.reshape(b * n, t, d)).reshape(b, n, -1)
    y = decoder(mfcc, x)
    pred, target = y[:, 0], pose[:, 0]
    rot = (euler_to_rotation(pred[..., :3]) - euler_to_rotation(target[..., :3])).square()
    trans = (pred[..., 3:] - target[..., 3:]).square()
    recon = (rot.sum((-3, -2, -1)) + trans.sum((-2, -1))).mean()
    first = pred[:, 1:] - pred[:, :-1]
    second = 2 * pred[:, 1:-1] - pred[:, :-2] - pred[:, 2:]
    smooth = first.square().sum(-1).mean() + second.square().sum(-1).mean()
    return (
        recon
        + 5.0 * smooth
        + contrastive(x[:, 0], x[:, 1], x[:, 2])
        + contrastive(y[:, 0], y[:, 1], y[:, 2])
    )


def main():
    p = pose_shapes.parser(__doc__.splitlines()[0])
    p.add_argument(
        "--bfloat16", action="store_true", help="train under torch.autocast('cpu', bfloat16)"
    )
    args = p.parse_args()
    torch_common.setup()
    encoder, decoder = Encoder(), Decoder()
    params = [*encoder.parameters(), *decoder.parameters()]
    opt = torch.optim.Adam(params, lr=1e-4)
    b, t = args.batch, args.frames
    pose = 0.1 * torch.randn(b, 3, t, 6)
    mfcc = torch.randn(b, rows_for_frames(t), 13)

    def train_step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bfloat16):
            loss = joint_loss(encoder, decoder, pose, mfcc)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return float(loss.detach())

    train_step()  # warm-up: allocations, oneDNN primitive creation
    step_s, step_times = torch_common.best_of(train_step, args.steps)

    encoder.eval()
    decoder.eval()
    speech_frames = int(args.speech_seconds * 25)
    ref = 0.1 * torch.randn(1, t, 6)
    speech = torch.randn(1, rows_for_frames(speech_frames), 13)

    def infer():
        with torch.inference_mode():
            return decoder(speech, encoder(ref)[:, None])

    infer()
    infer_s, _ = torch_common.best_of(infer, 3)
    print(
        json.dumps(
            {
                "framework": "pytorch",
                "autocast": "bfloat16" if args.bfloat16 else None,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "params": int(sum(p.numel() for p in params)),
                "train_step_s": step_s,
                "train_step_times_s": step_times,
                "inference_s": infer_s,
                "speech_seconds": args.speech_seconds,
                "batch": b,
                "frames": t,
            }
        )
    )


if __name__ == "__main__":
    main()
