"""Source of labs/block_a_identity.ipynb (and .es.ipynb). Rebuild: python -m labkit.notebooks."""

from labkit.content.notebooks import FIRST_CALL_TAG, code, md

NAME = "block_a_identity"
BLOCK = "A"

CELLS = [
    md(
        en="""
# Block A — a LoRALinear that changes nothing at first

This notebook runs **your** `LoRALinear` (from `src/minituner/lora.py`) and prints what the graded
tests check: the output difference at init, the trainable parameters, where gradients flow, the
freeze surviving `.to()`, `.train()` and `.eval()`, and dropout being off in eval mode.

Until block A is written, the first cell that builds a `LoRALinear` stops with your stub's
`NotImplementedError` (how nbval and `check --notebooks` report it: the lab text, section *The
notebooks*). Once your outputs match the stored ones, your block A behaves like the reference.
""",
        es="""
# Bloque A — un LoRALinear que al principio no cambia nada

Este notebook ejecuta **tu** `LoRALinear` (de `src/minituner/lora.py`) e imprime lo que comprueban
los tests evaluables: la diferencia de salida al inicio, los parámetros entrenables, por
dónde fluyen los gradientes, la congelación que sobrevive a `.to()`, `.train()` y `.eval()`, y el
dropout apagado en modo eval.

Mientras el bloque A no esté escrito, la primera celda que construye un `LoRALinear` se detiene con
el `NotImplementedError` de tu esqueleto (cómo lo señalan nbval y `check --notebooks`: en el texto
del laboratorio, sección *Los notebooks*). Cuando tus salidas coincidan con las guardadas, tu bloque
A se comporta como la referencia.
""",
    ),
    code(
        """
import matplotlib.pyplot as plt
import torch
from torch import nn

from minituner.i18n import translator
from minituner.lora import LoRALinear

say = translator("<lang>")  # what the cells below print, in this notebook's language
_ = torch.manual_seed(0)  # the same numbers on every run
torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and rounds alike on every machine
"""
    ),
    md(
        en="""
## Wrap one layer

A non-square layer, `nn.Linear(64, 48)`, so that a swapped transpose would show as a shape error.
`lora_A` is (r, in) and `lora_B` is (out, r), as in PyTorch's (out, in) weight layout.
""",
        es="""
## Envolver una capa

Una capa no cuadrada, `nn.Linear(64, 48)`, para que una traspuesta equivocada aparezca como error de
forma. `lora_A` es (r, in) y `lora_B` es (out, r), como en la disposición (out, in) de PyTorch.
""",
    ),
    code(
        """
base = nn.Linear(64, 48)
lora = LoRALinear(base, r=8, alpha=16.0)
print("lora_A", tuple(lora.lora_A.shape), " lora_B", tuple(lora.lora_B.shape))
print("scaling = alpha / r =", lora.scaling)
print(say("lora_B is all zeros:"), bool((lora.lora_B == 0).all()))
bound = 1 / 64 ** 0.5
print(say("lora_A within the kaiming bound 1/sqrt(in) = {bound:.4f}:").format(bound=bound),
      bool(lora.lora_A.abs().max() <= bound))
""",
        FIRST_CALL_TAG,
    ),
    md(
        en="""
## Identity at init

With `lora_B = 0` the update `lora_B @ lora_A` is exactly zero, so the output must equal `base(x)`
bit for bit: the difference is `0.0`, not merely small. It is `initial_output_diff`, the first line
of your notes file.
""",
        es="""
## Identidad al inicio

Con `lora_B = 0` la actualización `lora_B @ lora_A` es exactamente cero, así que la salida debe ser
igual a `base(x)` bit a bit: la diferencia es `0.0`, no solo pequeña. Es `initial_output_diff`, la
primera línea de tu archivo de notas.
""",
    ),
    code(
        """
x = torch.randn(4, 10, 64)  # (batch, sequence, in_features): leading dimensions are kept
with torch.no_grad():
    out = lora(x)
    diff = (out - base(x)).abs().max().item()
print(say("output shape"), tuple(out.shape))
print(say("max |LoRA(x) - base(x)| at init:"), diff)
"""
    ),
    md(
        en="""
## What is trainable

Only the two factors: r · (in + out) numbers. For the lab's `nn.Linear(64, 64)` at r = 8 that is
8 · (64 + 64) = 1024: `trainable_params`, the fourth line of your notes file.
""",
        es="""
## Qué es entrenable

Solo los dos factores: r · (in + out) números. Para el `nn.Linear(64, 64)` del laboratorio con
r = 8 son 8 · (64 + 64) = 1024: `trainable_params`, la cuarta línea de tu archivo de notas.
""",
    ),
    code(
        """
def describe(module):
    for name, p in sorted(module.named_parameters()):
        print(f"{name:12} {str(tuple(p.shape)):10} requires_grad={p.requires_grad}")
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    total = sum(p.numel() for p in module.parameters())
    print(say("trainable {trainable} of {total}").format(trainable=trainable, total=total))

describe(lora)
print()
describe(LoRALinear(nn.Linear(64, 64), r=8))
"""
    ),
    md(
        en="""
## Where gradients go

After one backward pass the frozen base has no gradient at all. `lora_B` gets one; `lora_A`'s
gradient is exactly zero at this first step, because it is proportional to `lora_B`, which is
still zero. From the second step on both factors learn. Zero or not, both gradients exist (`.grad`
is not `None`): the names printed with a gradient are `gradient_flow`, the second line of your notes
file.
""",
        es="""
## Adónde van los gradientes

Tras una pasada hacia atrás la base congelada no tiene gradiente. `lora_B` sí lo recibe; el gradiente
de `lora_A` es exactamente cero en este primer paso, porque es proporcional a `lora_B`, que todavía
vale cero. A partir del segundo paso aprenden los dos factores. Valgan cero o no, los dos gradientes
existen (`.grad` no es `None`): los nombres que se imprimen con gradiente son `gradient_flow`, la
segunda línea de tu archivo de notas.
""",
    ),
    code(
        """
loss = lora(x).pow(2).mean()
loss.backward()
for name, p in sorted(lora.named_parameters()):
    grad = "None" if p.grad is None else f"max |grad| = {p.grad.abs().max().item():.4f}"
    print(f"{name:12} {grad}")
"""
    ),
    md(
        en="""
## The freeze survives moving and mode switches

`requires_grad` belongs to each parameter. Converting the module, or switching between training
and evaluation, must not bring the base back to life.
""",
        es="""
## La congelación sobrevive a mover el módulo y a cambiar de modo

`requires_grad` pertenece a cada parámetro. Convertir el módulo, o pasar de entrenamiento a
evaluación, no debe volver a hacer entrenable la base.
""",
    ),
    code(
        """
for label, step in [(".to(torch.float64)", lambda m: m.to(torch.float64)),
                    (".train()", lambda m: m.train()),
                    (".eval()", lambda m: m.eval())]:
    lora = step(lora)
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    print(say("after {label:20} trainable: {trainable}   dtype of lora_A: {dtype}").format(
        label=label, trainable=trainable, dtype=lora.lora_A.dtype))
"""
    ),
    md(
        en="""
## Dropout only while training, only on the LoRA branch

With `dropout=0.25` and a non-zero `lora_B` (as after some training), two training-mode passes
differ, while evaluation mode is deterministic. With `lora_B = 0` even training mode returns
exactly `base(x)`: dropout never touches the base path.
""",
        es="""
## Dropout solo al entrenar, solo en la rama LoRA

Con `dropout=0.25` y un `lora_B` distinto de cero (como después de entrenar un poco), dos pasadas en
modo entrenamiento difieren, mientras que el modo evaluación es determinista. Con `lora_B = 0` incluso
el modo entrenamiento devuelve exactamente `base(x)`: el dropout nunca toca la rama base.
""",
    ),
    code(
        """
layer = LoRALinear(nn.Linear(64, 48), r=8, dropout=0.25)
x = torch.randn(16, 64)
with torch.no_grad():
    layer.train()
    print(say("train mode, lora_B = 0, max |out - base|:"), (layer(x) - layer.base(x)).abs().max().item())
    layer.lora_B.normal_()
    print(say("train mode, two passes equal:"), torch.equal(layer(x), layer(x)))
    layer.eval()
    print(say("eval mode,  two passes equal:"), torch.equal(layer(x), layer(x)))
"""
    ),
    md(
        en="""
## How the count grows with r

An adapter on `nn.Linear(in, out)` costs r · (in + out) parameters, linear in r; the full weight
costs in · out. The crossing point r = in · out / (in + out) is where LoRA stops saving anything:
32 for a 64 × 64 layer.
""",
        es="""
## Cómo crece la cuenta con r

Un adaptador sobre `nn.Linear(in, out)` cuesta r · (in + out) parámetros, lineal en r; el peso
completo cuesta in · out. El punto de cruce r = in · out / (in + out) es donde LoRA deja de ahorrar:
32 para una capa de 64 × 64.
""",
    ),
    code(
        """
ranks = [1, 2, 4, 8, 16, 32, 64]
counts = [sum(p.numel() for p in LoRALinear(nn.Linear(64, 64), r=r).parameters() if p.requires_grad)
          for r in ranks]
for r, n in zip(ranks, counts):
    print(say("r={r:2}  trainable={n:5}  ({share:.0%} of the 64x64 weight)").format(r=r, n=n, share=n / (64 * 64)))

fig, ax = plt.subplots(figsize=(5, 3.2), dpi=80)
ax.plot(ranks, counts, "o-", label="LoRA: r (in + out)")
ax.axhline(64 * 64, color="gray", linestyle="--", label=say("full weight: in * out"))
ax.set_xscale("log", base=2)
ax.set_xlabel(say("rank r"))
ax.set_ylabel(say("trainable parameters"))
ax.set_title("nn.Linear(64, 64)")
ax.legend()
plt.tight_layout()
plt.show()
"""
    ),
]
