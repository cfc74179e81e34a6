"""PyTorch side of the expression benchmark: paper 000's audio-to-expression regressor.

Run by `benchmarks/side_by_side.py` (needs the `bench` extra); prints one JSON object. The
network is `talkingjax.models.expression.ExpressionRegressor` at the reference sizes, written
with PyTorch's layers: 28 x 12 MFCC window -> conv 64 -> conv 128 -> maxpool 3x3 / (1, 2) ->
conv 256 -> conv 256 -> conv 512 -> maxpool 3x3 / (2, 2) (3x3 convs without bias, each with
BatchNorm + ReLU) -> FC 2048 -> FC 256 -> LSTM 256 x 3 -> linear 64 + 6 (expression and pose),
29.4 M parameters. The step is the one `benchmarks/expression_speed.py` times: batch 16 x 16
frames, the encoder on all 256 windows at once, train-mode BatchNorm, paper 001's Eq. 2
(expression and pose MSE plus the smoothness terms of the paper config), Adam (0.5, 0.999).
Inference: 60 s of speech (1500 windows) through the encoder in one batch, then the LSTM.

  python benchmarks/torch_expression.py [--steps 3] [--seconds 60] [--bfloat16]
"""

import argparse
import json

import torch
import torch_common
from torch import nn


class Regressor(nn.Module):
    def __init__(self, num_out=70):
        super().__init__()
        layers, c_in = [], 1
        for i, c in enumerate((64, 128, 256, 256, 512)):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            if i == 1:
                layers.append(nn.MaxPool2d(3, stride=(1, 2)))
            if i == 4:
                layers.append(nn.MaxPool2d(3, stride=(2, 2)))
            c_in = c
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(
            nn.Linear(512 * 12 * 2, 2048), nn.ReLU(), nn.Linear(2048, 256), nn.ReLU()
        )
        self.lstm = nn.LSTM(256, 256, 3, batch_first=True)
        self.head = nn.Linear(256, num_out)

    def forward(self, windows):  # [B, T, 28, 12] -> [B, T, 70]
        b, t = windows.shape[:2]
        x = self.convs(windows.reshape(b * t, 1, 28, 12))
        feats = self.fc(x.reshape(b * t, -1)).reshape(b, t, -1)
        seq, _ = self.lstm(feats)
        return self.head(seq)


def loss_fn(out, exp, pose):
    """Paper 001's Eq. 2 at the paper config's weights (`experiments/configs/expression.py`)."""
    y_exp, y_pose = out[..., :64], out[..., 64:] * 0.1  # pose_scale 0.1, as the library

    def continuity(y):  # mean over the batch of the summed squared frame-to-frame changes
        return (y[:, 1:] - y[:, :-1]).square().sum((1, 2)).mean()

    return (
        (y_exp - exp).square().mean()
        + 0.2 * (y_pose - pose).square().mean()
        + 0.01 * continuity(y_pose)
        + 1e-4 * continuity(y_exp)
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--bfloat16", action="store_true", help="under torch.autocast bfloat16")
    args = p.parse_args()
    torch_common.setup()
    model = Regressor()
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999))
    windows = 10.0 * torch.randn(args.batch, args.frames, 28, 12)
    exp = torch.randn(args.batch, args.frames, 64)
    pose = 0.1 * torch.randn(args.batch, args.frames, 6)

    def train_step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bfloat16):
            loss = loss_fn(model(windows), exp, pose)
        loss.float().backward()
        opt.step()
        return float(loss.detach())

    train_step()
    step_s, step_times = torch_common.best_of(train_step, args.steps)
    model.eval()
    speech = 10.0 * torch.randn(1, int(args.seconds * 25), 28, 12)

    def infer():
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=args.bfloat16):
            return model(speech)

    infer()
    infer_s, _ = torch_common.best_of(infer, 3)
    print(
        json.dumps(
            {
                "framework": "pytorch",
                "torch": torch.__version__,
                "autocast": "bfloat16" if args.bfloat16 else None,
                "threads": torch.get_num_threads(),
                "params": int(sum(q.numel() for q in model.parameters())),
                "train_step_s": step_s,
                "train_step_times_s": step_times,
                "inference_s": infer_s,
                "seconds": args.seconds,
                "batch": args.batch,
                "frames": args.frames,
            }
        )
    )


if __name__ == "__main__":
    main()
