"""Source of labs/block_c_roundtrip.ipynb (and .es.ipynb). Rebuild: python -m labkit.notebooks."""

from labkit.content.notebooks import FIRST_CALL_TAG, code, md

NAME = "block_c_roundtrip"
BLOCK = "C"

CELLS = [
    md(
        en="""
# Block C — saving and loading an adapter

This notebook runs **your** `lora_state_dict` and `load_lora_state_dict` (on a MiniGPT wrapped by
your block B code). An adapter is worth shipping on its own because it is small: the base model is
shared, and only `lora_A` / `lora_B` travel. The notebook shows what goes into the adapter's state
dict, how small it is, that it comes back exactly (into the same model and into a fresh one), and
that a bad adapter is rejected without touching the model.

Until blocks B and C are written, the first cell that wraps a model (or, after block B, the first
that calls your block C functions) stops with your stub's `NotImplementedError` (how nbval and
`check --notebooks` report it: the lab text, section *The notebooks*). Once your outputs match the
stored ones, your block C behaves like the reference.
""",
        es="""
# Bloque C — guardar y cargar un adaptador

Este notebook ejecuta **tus** `lora_state_dict` y `load_lora_state_dict` (sobre un MiniGPT envuelto
con tu código del bloque B). Merece la pena distribuir un adaptador por separado porque es pequeño:
el modelo base se comparte y solo viajan `lora_A` / `lora_B`. El notebook muestra qué entra en el
state dict del adaptador, lo pequeño que es, que vuelve exactamente igual (al mismo modelo y a uno
nuevo) y que un adaptador defectuoso se rechaza sin tocar el modelo.

Mientras los bloques B y C no estén escritos, la primera celda que envuelve un modelo (o, una vez
hecho el bloque B, la primera que llama a tus funciones del bloque C) se detiene con el
`NotImplementedError` de tu esqueleto (cómo lo señalan nbval y `check --notebooks`: en el texto del
laboratorio, sección *Los notebooks*). Cuando tus salidas coincidan con las guardadas, tu bloque C
se comporta como la referencia.
""",
    ),
    code(
        """
import io

import torch

from minituner.i18n import translator
from minituner.lora import load_lora_state_dict, lora_state_dict, wrap_minigpt_with_lora
from minituner.model import MiniGPT

say = translator("<lang>")  # what the cells below print, in this notebook's language
_ = torch.manual_seed(0)  # the same numbers on every run
torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and rounds alike on every machine
"""
    ),
    md(
        en="""
## Helpers

`build(seed)` makes a lab-config MiniGPT and wraps it. Its base weights depend only on the seed, so
two calls with the same seed give two models with identical bases: a stand-in for "the same
pre-trained checkpoint, loaded twice".

Training an adapter is block B's business; here `randomize_adapter` simply fills every `lora_A` and
`lora_B` with random numbers, in name order from a fixed seed, so that the adapter is clearly not
zero. All comparisons run in eval mode on one fixed batch of token ids.
""",
        es="""
## Funciones auxiliares

`build(seed)` crea un MiniGPT con la configuración del laboratorio y lo envuelve. Sus pesos base solo
dependen de la semilla, así que dos llamadas con la misma semilla dan dos modelos con bases
idénticas: un sustituto de «el mismo punto de control preentrenado, cargado dos veces».

Entrenar un adaptador es cosa del bloque B; aquí `randomize_adapter` se limita a llenar cada
`lora_A` y `lora_B` de números aleatorios, en orden de nombre y con una semilla fija, para que el
adaptador no sea cero de ninguna manera. Todas las comparaciones se hacen en modo eval sobre un lote
fijo de identificadores de token.
""",
    ),
    code(
        """
# A lab-config MiniGPT whose base weights depend only on seed, wrapped with LoRA (r=8).
def build(seed):
    torch.manual_seed(seed)
    return wrap_minigpt_with_lora(MiniGPT(), r=8, alpha=16.0).eval()


def is_lora(name):
    return name.endswith(("lora_A", "lora_B"))


# Random values in every lora_A / lora_B, drawn in name order: a stand-in for training.
def randomize_adapter(model, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if is_lora(name):
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))


idx = torch.randint(128, (4, 32), generator=torch.Generator().manual_seed(2))  # (B, T) token ids


def logits(model):
    with torch.no_grad():
        return model(idx)[0]


def max_diff(a, b):
    return (a - b).abs().max().item()
"""
    ),
    md(
        en="""
## A model with a non-trivial adapter

Right after wrapping, the adapter is zero and the model computes exactly its base. After
`randomize_adapter` the logits move clearly away from the base's: these adapted logits are what the
round trips below must reproduce.
""",
        es="""
## Un modelo con un adaptador no trivial

Justo después de envolver, el adaptador vale cero y el modelo calcula exactamente su base. Tras
`randomize_adapter` los logits se alejan claramente de los de la base: estos logits adaptados son
los que los viajes de ida y vuelta de abajo deben reproducir.
""",
    ),
    code(
        """
model = build(seed=0)
base_logits = logits(model)
randomize_adapter(model, seed=10)
adapted = logits(model)
print(say("the adapter moves the logits by up to {diff:.3f}").format(diff=max_diff(adapted, base_logits)))
""",
        FIRST_CALL_TAG,
    ),
    md(
        en="""
## What `lora_state_dict` returns

Exactly the `lora_A` / `lora_B` parameters, under their names in `model.named_parameters()`: two
tensors for each of the 12 wrapped layers. The values must be **detached copies**: equal to the
parameters now, but sharing no memory with them, so that training the model further cannot change a
saved adapter behind your back (the graded test `test_roundtrip_state_dict_keys_and_copies`).
""",
        es="""
## Qué devuelve `lora_state_dict`

Exactamente los parámetros `lora_A` / `lora_B`, con sus nombres de `model.named_parameters()`: dos
tensores por cada una de las 12 capas envueltas. Los valores deben ser **copias separadas del
grafo**: iguales a los parámetros ahora, pero sin compartir memoria con ellos, para que seguir
entrenando el modelo no pueda cambiar un adaptador guardado a tus espaldas (el test evaluable
`test_roundtrip_state_dict_keys_and_copies`).
""",
    ),
    code(
        """
state = lora_state_dict(model)
params = dict(model.named_parameters())
print(say("{count} tensors, the first ones:").format(count=len(state)))
for name in sorted(state)[:4]:
    print(f"  {name:28} {str(tuple(state[name].shape)):9} {state[name].dtype}")
print(say("keys are exactly the lora_A / lora_B parameters:"), set(state) == {n for n in params if is_lora(n)})
print(say("values equal the parameters:"), all(torch.equal(t, params[n].detach()) for n, t in state.items()))
print(say("detached (requires_grad=False):"), not any(t.requires_grad for t in state.values()))
print(say("no memory shared with the model:"), all(t.data_ptr() != params[n].data_ptr() for n, t in state.items()))
"""
    ),
    md(
        en="""
## How small is it?

The adapter holds r · (in + out) numbers per wrapped layer; the full checkpoint holds every weight of
the model. `torch.save` writes into an in-memory buffer (`io.BytesIO`) instead of a file, and the
buffer's length is the size the file would have. In this tiny model the embeddings and `lm_head`
together hold as many numbers as the adapter; in a large model the adapter is a small fraction of a
percent of the checkpoint.
""",
        es="""
## ¿Qué tamaño tiene?

El adaptador guarda r · (in + out) números por capa envuelta; el punto de control completo guarda
todos los pesos del modelo. `torch.save` escribe en un búfer en memoria (`io.BytesIO`) en vez de en un
archivo, y la longitud del búfer es el tamaño que tendría el archivo. En este modelo diminuto los
embeddings y `lm_head` ocupan lo mismo que el adaptador; en un modelo grande el adaptador es apenas
una fracción del uno por ciento del punto de control.
""",
    ),
    code(
        """
def saved_bytes(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getbuffer().nbytes


full = model.state_dict()
n_adapter = sum(t.numel() for t in state.values())
n_full = sum(t.numel() for t in full.values())
adapter_bytes, full_bytes = saved_bytes(state), saved_bytes(full)
for label, n, size in [(say("adapter"), n_adapter, adapter_bytes), (say("full checkpoint"), n_full, full_bytes)]:
    print(say("{label:16} {n:6} numbers, {nbytes:6} bytes of float32, saved: {kib:.0f} KiB").format(
        label=label, n=n, nbytes=4 * n, kib=size / 1024))
print(say("the adapter file is {share:.0%} of the full checkpoint").format(share=adapter_bytes / full_bytes))
"""
    ),
    md(
        en="""
## Round trip into the same model

The adapter goes through `torch.save` and `torch.load` (with `weights_only=True`, the safe way to
load tensors). Then the model's adapter is overwritten, as if training had gone on or another
adapter had been tried, and the saved one is loaded back. The logits must be those of the saved
adapter again: invariant 4 of the blueprint allows 1e-5, and since the same numbers go into the same
computation the difference is in fact `0.0`. (This is not a value of your notes file.)

Two more things the graded test `test_roundtrip_same_model` holds you to: the load copies the
values **into** the existing parameters (an optimizer holds references to them), and it leaves the
`requires_grad` flags alone, so the base stays frozen.
""",
        es="""
## Ida y vuelta en el mismo modelo

El adaptador pasa por `torch.save` y `torch.load` (con `weights_only=True`, la forma segura de cargar
tensores). Después se sobrescribe el adaptador del modelo, como si el entrenamiento hubiera
continuado o se hubiera probado otro adaptador, y se vuelve a cargar el guardado. Los logits deben
volver a ser los del adaptador guardado: el invariante 4 de `BLUEPRINT.md` admite 1e-5, y como entran
los mismos números en el mismo cálculo la diferencia es de hecho `0.0`. (No es uno de los valores
de tu archivo de notas.)

Hay dos cosas más que exige el test evaluable `test_roundtrip_same_model`: la carga copia los
valores **dentro** de los parámetros existentes (un optimizador guarda referencias a ellos) y no toca
los indicadores `requires_grad`, así que la base sigue congelada.
""",
    ),
    code(
        """
buffer = io.BytesIO()
torch.save(state, buffer)
buffer.seek(0)
loaded = torch.load(buffer, weights_only=True)

randomize_adapter(model, seed=11)  # training went on, or another adapter was tried
print(say("with another adapter, the logits differ by {diff:.3f}").format(diff=max_diff(logits(model), adapted)))
load_lora_state_dict(model, loaded)
print(say("after loading the saved one, max |difference|:"), max_diff(logits(model), adapted))
print(say("the same Parameter objects as before:"), all(p is params[n] for n, p in model.named_parameters()))
trainable = {n for n, p in model.named_parameters() if p.requires_grad}
print(say("trainable afterwards: exactly the adapter:"), trainable == set(state))
"""
    ),
    md(
        en="""
## Round trip into a fresh model

The usual way an adapter is used: somebody else builds the same base model, wraps it the same way,
and loads your adapter (the graded test `test_roundtrip_into_fresh_model`). Before the load the
fresh model computes its base exactly; after it, exactly the adapted logits.

The adapter file does not contain the base, and nothing in it says which base it belongs to.
Loaded into a MiniGPT with other base weights (seed 1), it loads without complaint, since every name
and shape matches, but the logits are different: keep track of which base an adapter was trained
on.
""",
        es="""
## Ida y vuelta en un modelo nuevo

La forma habitual de usar un adaptador: otra persona construye el mismo modelo base, lo envuelve de
la misma manera y carga tu adaptador (el test evaluable `test_roundtrip_into_fresh_model`). Antes
de la carga el modelo nuevo calcula exactamente su base; después, exactamente los logits adaptados.

El archivo del adaptador no contiene la base, y nada en él dice a qué base pertenece. Cargado en un
MiniGPT con otros pesos base (semilla 1), se carga sin protestar, porque todos los nombres y formas
coinciden, pero los logits son distintos: lleva la cuenta de sobre qué base se entrenó cada
adaptador.
""",
    ),
    code(
        """
fresh = build(seed=0)  # the same base weights as model
print(say("fresh model, before loading: max |logits - base logits|:"), max_diff(logits(fresh), base_logits))
load_lora_state_dict(fresh, loaded)
print(say("fresh model, after loading: max |logits - adapted logits|:"), max_diff(logits(fresh), adapted))

other = build(seed=1)  # another base, with other weights
load_lora_state_dict(other, loaded)
print(say("another base with the same adapter differs by {diff:.3f}").format(diff=max_diff(logits(other), adapted)))
"""
    ),
    md(
        en="""
## The strict loader says no

A loader that quietly skips what it does not recognize turns a wrong file into a silently wrong
model. `load_lora_state_dict` must instead raise `ValueError` for a missing key, an unexpected key
(here a base weight, `lm_head.weight`), a wrong shape (a transposed `lora_A`, or a `lora_B` of
shape (1, r) that `copy_` would happily broadcast), and name every key at fault, several at once if
need be. It must check everything **before** copying anything: after a rejected load the model is
exactly as it was. These are the cases of the graded test `test_roundtrip_rejects_bad_state`.

The table shows, for each bad state, whether a `ValueError` came, whether its message names the
keys at fault, and whether the model is untouched.
""",
        es="""
## El cargador estricto dice que no

Un cargador que se salta en silencio lo que no reconoce convierte un archivo equivocado en un modelo
equivocado sin que nadie se entere. `load_lora_state_dict` debe en cambio lanzar `ValueError` ante
una clave que falta, una clave inesperada (aquí un peso de la base, `lm_head.weight`) o una forma
incorrecta (un `lora_A` traspuesto, o un `lora_B` de forma (1, r) que `copy_` extendería por
broadcasting sin rechistar), y nombrar cada clave culpable, varias a la vez si hace falta. Debe comprobarlo todo
**antes** de copiar nada: tras una carga rechazada el modelo queda exactamente como estaba. Son los
casos del test evaluable `test_roundtrip_rejects_bad_state`.

La tabla muestra, para cada estado defectuoso, si llegó un `ValueError`, si su mensaje nombra las
claves culpables y si el modelo quedó intacto.
""",
    ),
    code(
        """
a_name, b_name = sorted(loaded)[:2]  # the first two keys: blocks.0.attn.k_proj.lora_A and .lora_B
without_a = {n: t for n, t in loaded.items() if n != a_name}
cases = {
    say("missing key"): (without_a, [a_name]),
    say("unexpected key"): ({**loaded, "lm_head.weight": model.lm_head.weight.detach().clone()},
                            ["lm_head.weight"]),
    say("transposed lora_A"): ({**loaded, a_name: loaded[a_name].T.contiguous()}, [a_name]),
    say("lora_B of shape (1, r)"): ({**loaded, b_name: loaded[b_name][:1].clone()}, [b_name]),
    say("several at once"): (
        {**without_a, b_name: loaded[b_name][:1].clone(), "lm_head.weight": torch.zeros(128, 64)},
        [a_name, b_name, "lm_head.weight"],
    ),
}

snapshot = {n: t.clone() for n, t in model.state_dict().items()}
messages = {}
print("{:24} {:>10} {:>15} {:>16}".format(say("bad state"), "ValueError", say("names the keys"), say("model unchanged")))
for case, (bad, keys) in cases.items():
    try:
        load_lora_state_dict(model, bad)
        messages[case] = None
    except ValueError as err:
        messages[case] = str(err)
    raised = messages[case] is not None
    named = raised and all(k in messages[case] for k in keys)
    unchanged = all(torch.equal(t, snapshot[n]) for n, t in model.state_dict().items())
    print(f"{case:24} {raised!s:>10} {named!s:>15} {unchanged!s:>16}")
print(say("logits still those of the saved adapter, max |difference|:"), max_diff(logits(model), adapted))
"""
    ),
    md(
        en="""
## The messages

The messages of the reference solution, one problem per line. Your wording may differ, so this one
cell's output is not compared by nbval (its `nbval-ignore-output` tag); what counts is the
table above: a `ValueError` that names the keys. Write messages a tired colleague could act on.
""",
        es="""
## Los mensajes

Los mensajes de la solución de referencia, un problema por línea. Tu redacción puede ser otra,
así que la salida de esta celda no la compara nbval (por su etiqueta
`nbval-ignore-output`); lo que cuenta es la tabla de arriba: un `ValueError` que nombra las claves.
Escribe mensajes que digan qué está mal y qué hacer, de modo que quien los lea al final de un día
largo sepa arreglarlo a la primera.
""",
    ),
    code(
        """
for case, message in messages.items():
    print(f"{case}:")
    if message is None:
        print("  " + say("(no ValueError was raised)"))
        continue
    for part in message.split("; ")[:4]:  # one problem per line
        print("  " + (part if len(part) <= 150 else part[:147] + "..."))
""",
        "nbval-ignore-output",
    ),
]
