"""Source of labs/block_b_wrapping.ipynb (and .es.ipynb). Rebuild: python -m labkit.notebooks."""

from labkit.content.notebooks import FIRST_CALL_TAG, code, md

NAME = "block_b_wrapping"
BLOCK = "B"

CELLS = [
    md(
        en="""
# Block B — wrapping a whole MiniGPT

This notebook runs **your** `wrap_minigpt_with_lora` (and, through it, your block A `LoRALinear`)
on the lab's MiniGPT. It shows which layers get an adapter, how many numbers become trainable,
that the freshly wrapped model computes exactly what it computed before, and that a short LoRA
fine-tune moves the adapter and nothing else.

The story is a miniature of real LoRA use. A real adapter sits on top of a large pre-trained
model; here a MiniGPT pre-trained for a few seconds stands in for it. It first learns from one half
of a tiny text (a small town and its weather), then a LoRA adapter teaches it the other half
(kitchen recipes) while its own weights stay frozen.

Until block B is written, the first cell that calls `wrap_minigpt_with_lora` stops with your stub's
`NotImplementedError` (how nbval and `check --notebooks` report it: the lab text, section *The
notebooks*). Once your outputs match the stored ones, your block B behaves like the reference.
""",
        es="""
# Bloque B — envolver un MiniGPT completo

Este notebook ejecuta **tu** `wrap_minigpt_with_lora` (y, a través de ella, tu `LoRALinear` del
bloque A) sobre el MiniGPT del laboratorio. Muestra qué capas reciben un adaptador, cuántos números
pasan a ser entrenables, que el modelo recién envuelto calcula exactamente lo mismo que antes, y que
un ajuste fino corto con LoRA mueve el adaptador y nada más.

La historia es una versión en miniatura del uso real de LoRA. Un adaptador de verdad se coloca sobre
un modelo grande ya preentrenado; aquí hace ese papel un MiniGPT preentrenado durante unos segundos.
Primero aprende de una mitad de un texto diminuto (un pueblo y su clima) y después un adaptador LoRA
le enseña la otra mitad (recetas de cocina) mientras sus propios pesos siguen congelados.

Mientras el bloque B no esté escrito, la primera celda que llama a `wrap_minigpt_with_lora` se
detiene con el `NotImplementedError` de tu esqueleto (cómo lo señalan nbval y `check --notebooks`:
en el texto del laboratorio, sección *Los notebooks*). Cuando tus salidas coincidan con las
guardadas, tu bloque B se comporta como la referencia.
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
## The text task

`data/tiny.txt` is about 3 KB of plain English in two parts separated by a blank line: a small town
and its weather, then a few recipes. MiniGPT reads characters: each one is a token, its ASCII code
(`ord`), so the 128-entry vocabulary of the lab config covers the whole text.

A training example is a random window of 32 characters (the model's `block_size`), and the target
is the same window shifted by one: at every position the model predicts the next character. Two
fixed batches of windows, one per part, measure the loss before and after each stage.
""",
        es="""
## La tarea de texto

`data/tiny.txt` son unos 3 KB de inglés sencillo en dos partes separadas por una línea en blanco: un
pueblo y su clima, y después unas cuantas recetas. MiniGPT lee caracteres: cada uno es un token, su
código ASCII (`ord`), así que el vocabulario de 128 entradas de la configuración del laboratorio
cubre todo el texto.

Un ejemplo de entrenamiento es una ventana aleatoria de 32 caracteres (el `block_size` del modelo), y
el objetivo es la misma ventana desplazada una posición: en cada posición el modelo predice el
carácter siguiente. Dos lotes fijos de ventanas, uno por parte, miden la pérdida antes y después de
cada etapa.
""",
    ),
    code(
        """
text = open("data/tiny.txt").read()
town, kitchen = text.split("\\n\\n")
print(say("{count} characters, {distinct} distinct, highest code {highest}").format(
    count=len(text), distinct=len(set(text)), highest=max(map(ord, text))))
print(say("town part: {town} characters, kitchen part: {kitchen} characters").format(
    town=len(town), kitchen=len(kitchen)))
print(say("the kitchen part starts:"), repr(kitchen[:48]))


def encode(s):
    return torch.tensor([ord(c) for c in s])


town_ids, kitchen_ids = encode(town), encode(kitchen)
T = 32  # block_size of the lab's MiniGPT


# batch_size random windows of T characters (x) and the same windows shifted by one (y)
def get_batch(ids, generator, batch_size=16):
    starts = torch.randint(len(ids) - T, (batch_size,), generator=generator)
    x = torch.stack([ids[s : s + T] for s in starts])
    y = torch.stack([ids[s + 1 : s + T + 1] for s in starts])
    return x, y


probe_gen = torch.Generator().manual_seed(1)
probe = {"town": get_batch(town_ids, probe_gen, 64), "kitchen": get_batch(kitchen_ids, probe_gen, 64)}


# The mean next-character loss on the fixed windows of each part, in eval mode.
@torch.no_grad()
def evaluate(model):
    model.eval()
    losses = {part: model(x, y)[1].item() for part, (x, y) in probe.items()}
    model.train()
    return say("town {town:.3f}   kitchen {kitchen:.3f}").format(**losses)
"""
    ),
    md(
        en="""
## A stand-in for a pre-trained model

Before any LoRA, an ordinary full training of every weight, 100 AdamW steps on the town part only.
This is the "pre-training" of our miniature: it does not produce a good language model, but it gives
the base some knowledge of English spelling, so the adapter later has something to build on. A
random loss is ln 128 ≈ 4.85; watch the kitchen loss too, a part the base never saw.
""",
        es="""
## Un sustituto de modelo preentrenado

Antes de cualquier LoRA, un entrenamiento normal de todos los pesos: 100 pasos de AdamW solo con la
parte del pueblo. Es el «preentrenamiento» de nuestra miniatura: no produce un buen modelo de
lenguaje, pero da a la base algo de conocimiento de la ortografía inglesa, para que luego el
adaptador tenga sobre qué construir. Un modelo que adivina al azar tiene una pérdida de
ln 128 ≈ 4,85; fíjate también en la pérdida de la cocina, una parte que la base no ha visto nunca.
""",
    ),
    code(
        """
model = MiniGPT()  # the lab config: vocab 128, block_size 32, 2 layers, 4 heads, n_embd 64
print(say("MiniGPT: {count} parameters").format(count=sum(p.numel() for p in model.parameters())))
print(say("random init:         {losses}").format(losses=evaluate(model)))

batches = torch.Generator().manual_seed(0)
pretrain_losses = []
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
for step in range(100):
    x, y = get_batch(town_ids, batches)
    _, loss = model(x, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    pretrain_losses.append(loss.item())
optimizer.zero_grad()  # leave no gradients behind
print(say("after pre-training:  {losses}").format(losses=evaluate(model)))
"""
    ),
    md(
        en="""
## Wrap it

From here on, the base is frozen. The wrap happens in place and returns the same model object.
Right after wrapping every `lora_B` is zero, so the logits must be **exactly** those of the
unwrapped model: the difference is `0.0`, not merely small. That is invariant 1 of the blueprint,
now for a whole model (the graded test `test_lora_init_identity_wrapped_minigpt`).

`dropout=0.0` switches the adapter's dropout off: with 100 steps on a tiny text there is nothing to
regularize, and it keeps the run below reproducible. A copy of every base weight is kept, to check
at the end that training did not touch them.
""",
        es="""
## Envolverlo

A partir de aquí la base queda congelada. El modelo se envuelve en su sitio: la función devuelve el
mismo objeto. Justo después de envolver, todos los `lora_B` valen cero, así que los logits deben ser
**exactamente** los del modelo sin envolver: la diferencia es `0.0`, no solo pequeña. Es el
invariante 1 de `BLUEPRINT.md`, ahora para un modelo entero (el test evaluable
`test_lora_init_identity_wrapped_minigpt`).

`dropout=0.0` apaga el dropout del adaptador: con 100 pasos sobre un texto diminuto no hay nada que
regularizar, y así la ejecución de abajo es reproducible. Guardamos una copia de cada peso de la
base para comprobar al final que el entrenamiento no los ha tocado.
""",
    ),
    code(
        """
x_probe, _ = probe["town"]
model.eval()
base_before = {name: t.clone() for name, t in model.state_dict().items()}
with torch.no_grad():
    logits_before, _ = model(x_probe)
returned = wrap_minigpt_with_lora(model, r=8, alpha=16.0, dropout=0.0)
with torch.no_grad():
    logits_after, _ = model(x_probe)
model.train()
print(say("wrap returned the same model object:"), returned is model)
print(say("max |logits after wrapping - logits before|:"), (logits_after - logits_before).abs().max().item())
""",
        FIRST_CALL_TAG,
    ),
    md(
        en="""
## Which layers got an adapter

The six default targets (`q_proj`, `k_proj`, `v_proj`, `o_proj`, `mlp.fc1`, `mlp.fc2`) in each of
the two blocks: twelve `LoRALinear` layers. Each costs r · (in + out) trainable numbers, and the
table checks that formula against the sizes of the actual `lora_A` and `lora_B`. `lm_head` is an
`nn.Linear` too, but not a target, so it stays as it was (and frozen).
""",
        es="""
## Qué capas recibieron un adaptador

Los seis objetivos por defecto (`q_proj`, `k_proj`, `v_proj`, `o_proj`, `mlp.fc1`, `mlp.fc2`) en
cada uno de los dos bloques: doce capas `LoRALinear`. Cada una cuesta r · (in + out) números
entrenables, y la tabla contrasta esa fórmula con el tamaño real de `lora_A` y `lora_B`. `lm_head`
también es un `nn.Linear`, pero no es un objetivo, así que se queda como estaba (y congelado).
""",
    ),
    code(
        """
modules = dict(model.named_modules())
wrapped = {name: modules[name] for name in sorted(modules) if isinstance(modules[name], LoRALinear)}
print("{:22} {:>4} {:>4} {:>2} {:>11} {:>12}".format(say("layer"), "in", "out", "r", "r*(in+out)", say("A + B sizes")))
for name, layer in wrapped.items():
    n_in, n_out = layer.base.in_features, layer.base.out_features
    counted = layer.lora_A.numel() + layer.lora_B.numel()
    print(f"{name:22} {n_in:4} {n_out:4} {layer.r:2} {layer.r * (n_in + n_out):11} {counted:12}")
print(say("{count} layers wrapped").format(count=len(wrapped)))
unwrapped = [n for n in sorted(modules) if isinstance(modules[n], nn.Linear) and not n.endswith(".base")]
print(say("nn.Linear layers left as they were:"), unwrapped)
"""
    ),
    md(
        en="""
## Only the adapter is trainable

After wrapping, exactly the `lora_A` / `lora_B` parameters have `requires_grad=True`: invariant 2 of
the blueprint (the graded test `test_freeze_wrap_minigpt_only_lora_trainable`; the count is
`test_param_count_wrapped_minigpt`'s). Embeddings, layer norms, `lm_head` and the wrapped bases are
all frozen.

Which total the fraction divides by matters. The first line below divides by the wrapped model's
parameters, the adapter included; the theory page *Parameter count*
divides by the model without its adapters, the parameters that full fine-tuning would train, and so
gets a larger share. The fraction is large either way because the model is tiny and its embeddings
and `lm_head` are a big share of it; on a model with billions of parameters the same recipe trains
well under 1 %. (None of this goes into your notes file: its `trainable_params` is block A's single
layer.)
""",
        es="""
## Solo el adaptador es entrenable

Tras envolver, exactamente los parámetros `lora_A` / `lora_B` tienen `requires_grad=True`: el
invariante 2 de `BLUEPRINT.md` (el test evaluable `test_freeze_wrap_minigpt_only_lora_trainable`; la
cuenta la comprueba `test_param_count_wrapped_minigpt`). Los embeddings, las normalizaciones de capa,
`lm_head` y las bases envueltas están todos congelados.

Importa entre qué total se divide la fracción. La primera línea de abajo divide entre los parámetros
del modelo envuelto, adaptador incluido; la página de teoría
*Número de parámetros* divide entre el modelo sin sus
adaptadores, los parámetros que entrenaría el ajuste fino completo, y obtiene así una parte mayor. La
fracción es grande en los dos casos porque el modelo es diminuto y sus embeddings y su `lm_head` pesan
mucho en él; en un modelo de miles de millones de parámetros la misma receta entrena bastante menos
del 1 %. (Nada de esto va a tu archivo de notas: su `trainable_params` es la capa suelta del
bloque A.)
""",
    ),
    code(
        """
params = dict(model.named_parameters())
trainable = {name: params[name] for name in sorted(params) if params[name].requires_grad}
n_trainable = sum(p.numel() for p in trainable.values())
n_total = sum(p.numel() for p in params.values())
print(say("trainable: {trainable} of {total} parameters of the wrapped model ({share:.1%})").format(
    trainable=n_trainable, total=n_total, share=n_trainable / n_total))
n_base = n_total - n_trainable  # the model without its adapters
print(say("the same {trainable} against the {base} parameters without the adapters: {share:.2%}").format(
    trainable=n_trainable, base=n_base, share=n_trainable / n_base))
print(say("sum of r*(in+out) over the table:"), sum(m.r * (m.base.in_features + m.base.out_features)
                                                 for m in wrapped.values()))
print(say("{count} trainable tensors, all named {names}").format(
    count=len(trainable), names=sorted({n.rpartition(".")[2] for n in trainable})))
for name in ["tok_emb.weight", "blocks.0.ln_1.weight", "blocks.0.attn.q_proj.base.weight", "lm_head.weight"]:
    print(f"{name:34} requires_grad={params[name].requires_grad}")
"""
    ),
    md(
        en="""
## A short LoRA fine-tune on the kitchen part

The optimizer gets only the trainable tensors. Before training, every `lora_A` is drawn again from
the same kaiming-uniform distribution, in name order from a fixed seed: the numbers below then do
not depend on the order in which your wrap happened to create the layers. Each `lora_B` stays at
zero, so the run starts exactly from the pre-trained model.

100 AdamW steps on random windows of the kitchen part, printing the batch loss every 20 steps.
""",
        es="""
## Un ajuste fino corto con LoRA sobre la parte de cocina

El optimizador recibe solo los tensores entrenables. Antes de entrenar, cada `lora_A` se vuelve a
sortear con la misma distribución kaiming uniforme, en orden de nombre y con una semilla fija: así
los números de abajo no dependen del orden en que tu `wrap_minigpt_with_lora` creó las capas. Cada `lora_B` sigue
en cero, así que la ejecución parte exactamente del modelo preentrenado.

100 pasos de AdamW sobre ventanas aleatorias de la parte de cocina, imprimiendo la pérdida del lote
cada 20 pasos.
""",
    ),
    code(
        """
_ = torch.manual_seed(1)
with torch.no_grad():
    for layer in wrapped.values():
        nn.init.kaiming_uniform_(layer.lora_A, a=math.sqrt(5))
print(say("before LoRA: {losses}").format(losses=evaluate(model)))

lora_losses = []
optimizer = torch.optim.AdamW(list(trainable.values()), lr=1e-2)
for step in range(100):
    x, y = get_batch(kitchen_ids, batches)
    _, loss = model(x, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    lora_losses.append(loss.item())
    if step % 20 == 0 or step == 99:
        print(say("step {step:3}  batch loss {loss:.3f}").format(step=step, loss=loss.item()))
print(say("after LoRA:  {losses}").format(losses=evaluate(model)))
"""
    ),
    md(
        en="""
## The loss curve

Left of the dashed line every weight trains on the town part; right of it only the adapter trains,
on the kitchen part. The jump at the line is the change of text, not of model: right after
wrapping, the model is still exactly the pre-trained one.
""",
        es="""
## La curva de pérdida

A la izquierda de la línea discontinua se entrenan todos los pesos con la parte del pueblo; a la
derecha solo se entrena el adaptador, con la parte de cocina. El salto en la línea es el cambio de
texto, no de modelo: justo después de envolver, el modelo sigue siendo exactamente el preentrenado.
""",
    ),
    code(
        """
fig, ax = plt.subplots(figsize=(5, 3.2), dpi=80)
ax.plot(range(100), pretrain_losses, label=say("full training, town"))
ax.plot(range(100, 200), lora_losses, label=say("LoRA only, kitchen"))
ax.axvline(100, color="gray", linestyle="--")
ax.set_xlabel(say("step"))
ax.set_ylabel(say("batch loss"))
ax.set_title(say("MiniGPT on tiny.txt"))
ax.legend()
plt.tight_layout()
plt.show()
"""
    ),
    md(
        en="""
## The base did not move

Every base weight is compared with the copy taken before wrapping (a wrapped layer's weight is now
called `...q_proj.base.weight`). The change must be exactly `0.0`, and no frozen parameter holds a
gradient. All the learning went into the 24 adapter tensors.

Since the base is intact, taking the adapter away gives back the pre-trained model: a plain
`MiniGPT` loaded with the base weights scores exactly the losses printed before LoRA. The adapter
improved the kitchen part at the cost of the town part, and removing it undoes both. That is what
makes adapters cheap to swap.
""",
        es="""
## La base no se movió

Cada peso de la base se compara con la copia tomada antes de envolver (el peso de una capa envuelta
se llama ahora `...q_proj.base.weight`). El cambio debe ser exactamente `0.0`, y ningún parámetro
congelado guarda un gradiente. Todo el aprendizaje fue a parar a los 24 tensores del adaptador.

Como la base está intacta, quitar el adaptador devuelve el modelo preentrenado: un `MiniGPT` normal
cargado con los pesos de la base obtiene exactamente las pérdidas impresas antes de LoRA. El
adaptador mejoró la parte de cocina a costa de la del pueblo, y quitarlo deshace ambas cosas. Eso es
lo que hace que los adaptadores sean baratos de intercambiar.
""",
    ),
    code(
        """
now = {name.replace(".base.", "."): t for name, t in model.state_dict().items()}
change = max((now[name] - before).abs().max().item() for name, before in base_before.items())
n_numbers = sum(t.numel() for t in base_before.values())
print(say("{tensors} base tensors ({numbers} numbers): max |change| = {change}").format(
    tensors=len(base_before), numbers=n_numbers, change=change))
with_grad = [name for name, p in params.items() if not p.requires_grad and p.grad is not None]
print(say("frozen parameters holding a gradient:"), len(with_grad))
moved = [name for name, p in trainable.items() if name.endswith("lora_B") and p.abs().max().item() > 0]
print(say("lora_B tensors no longer zero: {moved} of {wrapped}").format(moved=len(moved), wrapped=len(wrapped)))

plain = MiniGPT()
plain.load_state_dict({name: now[name] for name in plain.state_dict()})
print(say("with the adapter:       {losses}").format(losses=evaluate(model)))
print(say("base alone, taken out:  {losses}").format(losses=evaluate(plain)))
"""
    ),
]
