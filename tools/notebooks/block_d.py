"""Source of labs/block_d_merge.ipynb (and .es.ipynb). Rebuild: python -m labkit.notebooks."""

from labkit.content.notebooks import FIRST_CALL_TAG, code, md

NAME = "block_d_merge"
BLOCK = "D"

CELLS = [
    md(
        en="""
# Block D — merging an adapter into its base

This notebook runs **your** `LoRALinear.merge_` (and your blocks A and B, which it builds on). It
first trains a small adapter so that there is a real update to merge, then looks at that update: a
matrix of rank at most r. Then it merges, and prints what the graded tests check: the output before
and after the merge agree up to float rounding, both factors are zero afterwards, no
`requires_grad` flag changed, a second merge does nothing, and a fresh adapter can start on top of
the merged weight. Last, it merges every adapter of a wrapped MiniGPT.

Until block A is written, the first cell that builds a `LoRALinear` stops with your stub's
`NotImplementedError`; until block D is, the first cell that calls `merge_` does (how nbval and
`check --notebooks` report it: the lab text, section *The notebooks*). Once your outputs match the
stored ones, your block D behaves like the reference.
""",
        es="""
# Bloque D — fusionar un adaptador con su base

Este notebook ejecuta **tu** `LoRALinear.merge_` (y tus bloques A y B, sobre los que se apoya).
Primero entrena un adaptador pequeño para que haya una actualización real que fusionar, y después
examina esa actualización: una matriz de rango como mucho r. Luego fusiona e imprime lo que
comprueban los tests evaluables: la salida antes y después de la fusión coincide salvo por el
redondeo en coma flotante, los dos factores valen cero al terminar, ningún indicador
`requires_grad` ha cambiado, una segunda fusión no hace nada y un adaptador nuevo puede empezar
encima del peso fusionado. Por último, fusiona todos los adaptadores de un MiniGPT envuelto.

Mientras el bloque A no esté escrito, la primera celda que construye un `LoRALinear` se detiene con
el `NotImplementedError` de tu esqueleto; mientras no lo esté el bloque D, se detiene la primera que
llama a `merge_` (cómo lo señalan nbval y `check --notebooks`: en el texto del laboratorio, sección
*Los notebooks*). Cuando tus salidas coincidan con las guardadas, tu bloque D se comporta como la
referencia.
""",
    ),
    code(
        """
import math

import matplotlib.pyplot as plt
import torch
from torch import nn

from minituner.i18n import translator
from minituner.lora import LoRALinear, wrap_minigpt_with_lora
from minituner.model import MiniGPT

say = translator("<lang>")  # what the cells below print, in this notebook's language
_ = torch.manual_seed(0)  # the same numbers on every run
torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and rounds alike on every machine
"""
    ),
    md(
        en="""
## A task that needs a low-rank change

A frozen `nn.Linear(64, 48)` plays the pre-trained layer. The "new task" is the same layer with a
change of rank 4 added to its weight, `delta` (48 × 64, in PyTorch's (out, in) layout). The
adapter only sees input–output pairs of the new task, never `delta` itself. Its singular values
are printed for later: four are clearly non-zero, the other 44 are zero up to float32 rounding,
which is why `matrix_rank` reports 4.
""",
        es="""
## Una tarea que necesita un cambio de rango bajo

Un `nn.Linear(64, 48)` congelado hace de capa preentrenada. La «tarea nueva» es la misma capa con un
cambio de rango 4 sumado a su peso, `delta` (48 × 64, en la disposición (out, in) de PyTorch). El
adaptador solo ve pares de entrada y salida de la tarea nueva, nunca `delta`. Sus valores singulares
se imprimen para más adelante: cuatro son claramente distintos de cero y los otros 44 son cero salvo
por el redondeo de float32, y por eso `matrix_rank` da 4.
""",
    ),
    code(
        """
base = nn.Linear(64, 48)
delta = 0.05 * torch.randn(48, 4) @ torch.randn(4, 64)  # rank 4 by construction
x_train = torch.randn(256, 64)
with torch.no_grad():
    y_train = x_train @ (base.weight + delta).T + base.bias  # what the adapted layer should output

true_sv = torch.linalg.svdvals(delta.double())
print(say("singular values of delta, the first 4:"), [round(s, 3) for s in true_sv[:4].tolist()])
print(say("rank of delta:"), torch.linalg.matrix_rank(delta).item())
"""
    ),
    md(
        en="""
## Train an adapter of rank 4

`r=4` and the default `alpha=16.0`, so `scaling = 4.0`. `lora_A` is drawn again from a fixed seed,
so the numbers below do not depend on how your constructor used the random generator. Then 80 Adam
steps on the mean squared error; only the two factors are handed to the optimizer.
""",
        es="""
## Entrenar un adaptador de rango 4

`r=4` y el `alpha=16.0` por defecto, así que `scaling = 4.0`. `lora_A` se vuelve a sortear con una
semilla fija, para que los números de abajo no dependan de cómo use tu constructor el generador
aleatorio. Después, 80 pasos de Adam sobre el error cuadrático medio; el optimizador recibe solo los
dos factores.
""",
    ),
    code(
        """
lora = LoRALinear(base, r=4, alpha=16.0)
_ = torch.manual_seed(1)
nn.init.kaiming_uniform_(lora.lora_A, a=math.sqrt(5))

optimizer = torch.optim.Adam([lora.lora_A, lora.lora_B], lr=1e-2)
for step in range(80):
    loss = (lora(x_train) - y_train).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 20 == 0:
        print(say("step {step:2}  loss {loss:.4g}").format(step=step, loss=loss.item()))
optimizer.zero_grad(set_to_none=True)  # leave no gradients behind
with torch.no_grad():
    print(say("after 80 steps  loss {loss:.4g}").format(loss=(lora(x_train) - y_train).pow(2).mean().item()))
""",
        FIRST_CALL_TAG,
    ),
    md(
        en="""
## The learned update has rank at most r

Whatever the training did, the update is `scaling * lora_B @ lora_A`, a (48, r) matrix times an
(r, 64) one: its rank cannot exceed r = 4. The singular values show it: four that match those of
`delta` closely (the adapter found the change it was meant to learn), then a cliff. The product is
formed here in float64, so the "zero" singular values sit at float64 rounding, around 1e-15; the
log scale makes the cliff visible.

The low rank is not what lets `merge_` lose nothing: any (out, in) matrix can be added to
`base.weight`, whatever its rank. What the low rank buys is size: the adapter stores this update
as r · (in + out) = 448 numbers instead of in · out = 3072 (the counts printed further down).
""",
        es="""
## La actualización aprendida tiene rango como mucho r

Haga lo que haga el entrenamiento, la actualización es `scaling * lora_B @ lora_A`, una matriz de
(48, r) por otra de (r, 64): su rango no puede pasar de r = 4. Los valores singulares lo muestran:
cuatro muy parecidos a los de `delta` (el adaptador encontró el cambio que debía aprender) y luego un
precipicio. Aquí el producto se forma en float64, así que los valores singulares «nulos» quedan al
nivel del redondeo de float64, en torno a 1e-15; la escala logarítmica hace visible el precipicio.

No es el rango bajo lo que permite a `merge_` no perder nada: cualquier matriz (out, in) se puede
sumar a `base.weight`, sea cual sea su rango. Lo que aporta el rango bajo es el tamaño: el adaptador
guarda esta actualización como r · (in + out) = 448 números en lugar de in · out = 3072 (las cuentas
que se imprimen más abajo).
""",
    ),
    code(
        """
with torch.no_grad():
    update = lora.scaling * lora.lora_B.double() @ lora.lora_A.double()  # a (48, 64) matrix, in float64
learned_sv = torch.linalg.svdvals(update)
print(say("update shape:"), tuple(update.shape))
print(say("learned singular values, the first 4:"), [round(s, 3) for s in learned_sv[:4].tolist()])
print(say("largest of the other {count}: {largest:.2e}").format(count=len(learned_sv) - 4,
                                                                largest=learned_sv[4:].max().item()))

fig, ax = plt.subplots(figsize=(5, 3.2), dpi=80)
ax.semilogy(range(1, 49), learned_sv.numpy(), "o", markersize=4, label=say("learned update"))
ax.semilogy(range(1, 5), true_sv[:4].numpy(), "x", color="black", label=say("delta (first 4)"))
ax.axvline(4.5, color="gray", linestyle="--")
ax.set_xlabel(say("index"))
ax.set_ylabel(say("singular value"))
ax.set_title("scaling * lora_B @ lora_A, r = 4")
ax.legend()
plt.tight_layout()
plt.show()
"""
    ),
    md(
        en="""
## Merge

`merge_()` adds the update to `base.weight`, in place, then sets both factors to zero. The layer
must compute the same function as before, but now through its base alone. The outputs are not
bit-identical: `(W + ΔW) x` and `W x + ΔW x` round differently in float32. The difference is at the
level of float rounding, well below 1e-5: invariant 3 of the blueprint (the graded
`test_merge_equivalence`). Measured on the lab's `nn.Linear(64, 64)` at r = 8, it is `merge_diff`,
the third line of your notes file.

`merge_` must also leave every `requires_grad` flag as it found it: the base stays frozen, the
factors stay trainable.
""",
        es="""
## Fusionar

`merge_()` suma la actualización a `base.weight`, en su sitio, y después pone a cero los dos factores.
La capa debe calcular la misma función que antes, pero ahora solo a través de su base. Las salidas no
son idénticas bit a bit: `(W + ΔW) x` y `W x + ΔW x` redondean de forma distinta en float32. La
diferencia está al nivel del redondeo en coma flotante, muy por debajo de 1e-5: es el invariante 3
de `BLUEPRINT.md` (el test evaluable `test_merge_equivalence`). Medida sobre el `nn.Linear(64, 64)`
del laboratorio con r = 8, es `merge_diff`, la tercera línea de tu archivo de notas.

`merge_` también debe dejar cada indicador `requires_grad` como estaba: la base sigue congelada y
los factores siguen siendo entrenables.
""",
    ),
    code(
        """
x = torch.randn(32, 64)
flags_before = {name: p.requires_grad for name, p in sorted(lora.named_parameters())}
with torch.no_grad():
    out_before = lora(x)
    weight_before = base.weight.clone()
lora.merge_()
with torch.no_grad():
    out_merged = lora(x)

merge_diff = (out_merged - out_before).abs().max().item()
print(say("max |after merge - before merge| = {diff:.2e}   below 1e-5: {below}").format(
    diff=merge_diff, below=merge_diff < 1e-5))
with torch.no_grad():
    moved = (base.weight - weight_before - update.float()).abs().max().item()
print(say("base.weight moved by the update: max |change - update| = {moved:.2e}").format(moved=moved))
print(say("lora_A all zeros: {a}   lora_B all zeros: {b}").format(
    a=bool((lora.lora_A == 0).all()), b=bool((lora.lora_B == 0).all())))
for name, p in sorted(lora.named_parameters()):
    print(f"{name:12} requires_grad {flags_before[name]} -> {p.requires_grad}")
"""
    ),
    md(
        en="""
## Merging again changes nothing

With both factors at zero the update is exactly zero, so a second `merge_()` adds exactly zero:
the weight stays the same bit for bit. Merging is safe to repeat.
""",
        es="""
## Fusionar otra vez no cambia nada

Con los dos factores a cero la actualización es exactamente cero, así que un segundo `merge_()` suma
exactamente cero: el peso sigue igual bit a bit. Fusionar se puede repetir sin peligro.
""",
    ),
    code(
        """
weight_merged = base.weight.clone()
lora.merge_()
with torch.no_grad():
    out_twice = lora(x)
print(say("base.weight unchanged by a second merge:"), torch.equal(base.weight, weight_merged))
print(say("max |output after 2 merges - after 1|:"), (out_twice - out_merged).abs().max().item())
"""
    ),
    md(
        en="""
## What a merged layer costs

After the merge the layer is `base` plus a branch of zeros. The branch adds exactly `0.0`, so the
output equals `base(x)` **exactly**, and one could swap the `LoRALinear` for its `base` and ship a
plain `nn.Linear`, with no extra work per input at all.

The lab's rule is different: `merge_` keeps the factors, set to zero, so that the module keeps its
shape and its parameter names, and a new adapter can be trained on top later. The price is that the
forward pass still runs the two thin matmuls of the branch: r · (in + out) multiply-adds per input
row, on top of in · out for the base. The merged weight has the size of the original, so a merged
layer costs what the plain `nn.Linear` costs plus that zeroed branch; swapping in the plain base
removes even that.
""",
        es="""
## Cuánto cuesta una capa fusionada

Tras la fusión, la capa es `base` más una rama de ceros. La rama suma exactamente `0.0`, así que la
salida es **exactamente** `base(x)`, y se podría cambiar el `LoRALinear` por su `base` y entregar un
`nn.Linear` normal, sin ningún trabajo extra por entrada.

La regla del laboratorio es otra: `merge_` conserva los factores, puestos a cero, para que el módulo
mantenga su forma y los nombres de sus parámetros, y para poder entrenar más adelante un adaptador
nuevo encima. El precio es que la pasada hacia delante sigue ejecutando los dos productos pequeños de la
rama: r · (in + out) multiplicaciones y sumas por fila de entrada, además de las in · out de la base.
El peso fusionado tiene el tamaño del original, así que una capa fusionada cuesta lo mismo que el
`nn.Linear` simple más esa rama a cero; cambiarla por su base quita incluso eso.
""",
    ),
    code(
        """
with torch.no_grad():
    print(say("max |merged LoRALinear(x) - base(x)|:"), (lora(x) - base(x)).abs().max().item())
n_in, n_out = base.in_features, base.out_features
print(say("multiply-adds per input row: base {base}, zeroed branch {branch}").format(
    base=n_in * n_out, branch=lora.r * (n_in + n_out)))
"""
    ),
    md(
        en="""
## A fresh adapter on top of the merged weight

The lab asks that re-randomizing the factors after a merge must not break anything. Drawing
`lora_A` again (kaiming-uniform, as at construction) leaves the output unchanged, exactly, because
`lora_B` is still zero: the layer is back in the state of block A, a new adapter at identity, now
around the merged weight. One backward pass shows it learns like a new one: `lora_B` gets a
gradient, `lora_A`'s is zero at this first step, the base gets none.

Of this and the second merge above, the graded tests check two things: that merging a second time
leaves the output unchanged (`test_merge_equivalence`), and that after merging the base stays frozen
and a fresh adapter learns again (`test_merge_twice_and_reinit_then_train`).
""",
        es="""
## Un adaptador nuevo sobre el peso fusionado

El enunciado del laboratorio pide que volver a sortear los factores tras una fusión no rompa nada. Sortear de nuevo
`lora_A` (kaiming uniforme, como en la construcción) deja la salida igual, exactamente, porque
`lora_B` sigue valiendo cero: la capa vuelve al estado del bloque A, con un adaptador nuevo que aún
no cambia nada, ahora alrededor del peso fusionado. Una pasada hacia atrás muestra que aprende como uno
nuevo: `lora_B` recibe gradiente, el de `lora_A` es cero en este primer paso y la base no recibe
ninguno.

De esto y de la segunda fusión de más arriba, los tests evaluables comprueban dos cosas: que fusionar
por segunda vez deje la salida igual (`test_merge_equivalence`) y que, tras fusionar, la base siga
congelada y un adaptador nuevo vuelva a aprender (`test_merge_twice_and_reinit_then_train`).
""",
    ),
    code(
        """
_ = torch.manual_seed(2)
nn.init.kaiming_uniform_(lora.lora_A, a=math.sqrt(5))
with torch.no_grad():
    print(say("max |output with a new lora_A - merged output|:"), (lora(x) - out_merged).abs().max().item())

lora(x_train).sub(y_train).pow(2).mean().backward()
for name, p in sorted(lora.named_parameters()):
    grad = "None" if p.grad is None else f"max |grad| = {p.grad.abs().max().item():.4f}"
    print(f"{name:12} {grad}")
"""
    ),
    md(
        en="""
## A trainable base: merge outside autograd

With `freeze_base=False` the base weight requires a gradient, and PyTorch refuses an in-place
change of such a leaf tensor while autograd is recording. `merge_` must therefore work without
autograd (`torch.no_grad()`, or a `@torch.no_grad()` decorator). The flags stay as they were here
too: everything trainable.
""",
        es="""
## Una base entrenable: fusionar fuera de autograd

Con `freeze_base=False` el peso de la base requiere gradiente, y PyTorch no permite modificar en su
sitio un tensor hoja así mientras autograd está registrando operaciones. Por eso `merge_` tiene que
trabajar sin autograd (`torch.no_grad()`, o un decorador `@torch.no_grad()`). Aquí los indicadores
también se quedan como estaban: todo entrenable.
""",
    ),
    code(
        """
layer = LoRALinear(nn.Linear(64, 48), r=4, freeze_base=False)
with torch.no_grad():
    layer.lora_B.normal_(std=0.1)  # stands in for a trained lora_B
    before = layer(x)
layer.merge_()
with torch.no_grad():
    diff = (layer(x) - before).abs().max().item()
print(say("freeze_base=False: max |after merge - before merge| = {diff:.2e}").format(diff=diff))
print("requires_grad:", {name: p.requires_grad for name, p in sorted(layer.named_parameters())})
"""
    ),
    md(
        en="""
## Merging a whole MiniGPT

The same check for a model: the lab's MiniGPT wrapped with your block B (r = 8, no dropout),
`lora_A` drawn again in name order from a fixed seed, then 30 Adam steps on a fixed batch of random
token ids, so that every `lora_B` has moved away from zero. The loss only needs to fall a little:
the point is a trained adapter, not a good model.
""",
        es="""
## Fusionar un MiniGPT entero

La misma comprobación para un modelo: el MiniGPT del laboratorio envuelto con tu bloque B (r = 8,
sin dropout), `lora_A` sorteado de nuevo en orden de nombre con una semilla fija, y después 30 pasos
de Adam sobre un lote fijo de identificadores de token aleatorios, para que cada `lora_B` se haya
alejado de cero. Basta con que la pérdida baje un poco: lo que importa es tener un adaptador
entrenado, no un buen modelo.
""",
    ),
    code(
        """
_ = torch.manual_seed(3)
model = wrap_minigpt_with_lora(MiniGPT(), r=8, alpha=16.0, dropout=0.0)
modules = dict(model.named_modules())
adapters = {name: modules[name] for name in sorted(modules) if isinstance(modules[name], LoRALinear)}
_ = torch.manual_seed(4)
with torch.no_grad():
    for layer in adapters.values():
        nn.init.kaiming_uniform_(layer.lora_A, a=math.sqrt(5))

tokens = torch.randint(0, 128, (8, 33), generator=torch.Generator().manual_seed(5))
idx, targets = tokens[:, :-1], tokens[:, 1:]  # (8, 32): predict the next token
optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
for step in range(30):
    _, loss = model(idx, targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 10 == 0 or step == 29:
        print(say("step {step:2}  loss {loss:.3f}").format(step=step, loss=loss.item()))
optimizer.zero_grad(set_to_none=True)
print(say("{count} LoRALinear layers; lora_B no longer zero in {moved}").format(
    count=len(adapters), moved=sum(bool(layer.lora_B.abs().max() > 0) for layer in adapters.values())))
"""
    ),
    md(
        en="""
## Merge every adapter and compare the logits

`merge_()` on each of the twelve layers, then the logits of the same batch again. Through two
transformer blocks the rounding differences add up: every layer rounds, before merging as after.
So the graded `test_merge_wrapped_minigpt` does not apply one layer's rule to a whole model; it
allows what float32 rounding can add up to through the model's depth (twice 2⁻²⁴ times the number
of products each logit goes through, times max(1, largest |logit|)), and a correct merge stays far
inside that.

Finally the merged weights are loaded into a plain, unwrapped `MiniGPT`: its logits equal the merged
model's **exactly**, since every zeroed branch adds exactly zero. That plain model is what you would
deploy: the size and the speed of the original, with the adapter's behaviour built in.
""",
        es="""
## Fusionar todos los adaptadores y comparar los logits

`merge_()` en cada una de las doce capas y, después, otra vez los logits del mismo lote. A través de
dos bloques transformer las diferencias de redondeo se acumulan: cada capa redondea, antes y después
de fusionar. Por eso el test evaluable `test_merge_wrapped_minigpt` no aplica a un modelo entero la
regla de una capa; admite lo que el redondeo en float32 puede sumar a lo largo de la profundidad del
modelo (dos veces 2⁻²⁴ por el número de productos por los que pasa cada logit, por
max(1, mayor |logit|)), y una fusión correcta queda muy dentro de ese margen.

Por último, los pesos fusionados se cargan en un `MiniGPT` normal, sin envolver: sus logits son
**exactamente** los del modelo fusionado, porque cada rama a cero suma exactamente cero. Ese modelo
normal es el que se pondría en producción: el tamaño y la velocidad del original, con el
comportamiento del adaptador incorporado.
""",
    ),
    code(
        """
model.eval()
with torch.no_grad():
    logits_before, _ = model(idx)
    for layer in adapters.values():
        layer.merge_()
    logits_merged, _ = model(idx)
logit_diff = (logits_merged - logits_before).abs().max().item()
print(say("max |logits after merging all - before| = {diff:.2e}   below 1e-5: {below}").format(
    diff=logit_diff, below=logit_diff < 1e-5))
print(say("factors left non-zero:"), sum(bool(p.abs().max() > 0) for n, p in model.named_parameters() if "lora_" in n))

merged_weights = {name.replace(".base.", "."): t for name, t in model.state_dict().items() if "lora_" not in name}
plain = MiniGPT()
plain.load_state_dict(merged_weights)
plain.eval()
with torch.no_grad():
    logits_plain, _ = plain(idx)
print(say("max |plain MiniGPT with merged weights - merged wrapped model|:"),
      (logits_plain - logits_merged).abs().max().item())
"""
    ),
    md(
        en="""
## What to take away

* The update an adapter learns is a matrix of rank at most r; merging folds it into the base
  weight, so inference needs no extra weights.
* After `merge_()` the output agrees with the unmerged one up to float rounding (below 1e-5), both
  factors are zero, and no `requires_grad` flag has changed.
* Merging twice is harmless, and a fresh `lora_A` after a merge starts a new adapter at identity.
""",
        es="""
## Lo esencial

* La actualización que aprende un adaptador es una matriz de rango como mucho r; fusionarla la
  incorpora al peso base, así que la inferencia no necesita pesos adicionales.
* Tras `merge_()` la salida coincide con la de antes de fusionar salvo por el redondeo (por debajo de
  1e-5), los dos factores valen cero y ningún indicador `requires_grad` ha cambiado.
* Fusionar dos veces no hace daño, y un `lora_A` nuevo tras una fusión empieza un adaptador nuevo que,
  como al principio, no cambia nada.
""",
    ),
]
