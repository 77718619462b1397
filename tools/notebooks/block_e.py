"""Source of labs/block_e_regression.ipynb (and .es.ipynb). Rebuild: python -m labkit.notebooks."""

from labkit.content.notebooks import FIRST_CALL_TAG, code, md

NAME = "block_e_regression"
BLOCK = "E"

CELLS = [
    md(
        en="""
# Block E — LoRA on a linear regression, gradients by hand

This notebook runs **your** `lora_regression_grads` and `train_lora_regression` (from
`src/minituner/lora.py`) on a small synthetic regression problem in NumPy. No `nn.Module` and no
autograd in your code: you write the loss, its gradient and the gradient-descent loop yourself.
Here we check your gradients against PyTorch's autograd and against finite differences, train an adapter, compare it with the best
fit any weight could reach, and try the edge cases the graded tests try.

Until block E is written, the first cell that calls `lora_regression_grads` stops with your stub's
`NotImplementedError` (how nbval and `check --notebooks` report it: the lab text, section *The
notebooks*). Once your outputs match the stored ones, your block E behaves like the reference.
""",
        es="""
# Bloque E — LoRA sobre una regresión lineal, con gradientes a mano

Este notebook ejecuta **tus** `lora_regression_grads` y `train_lora_regression` (de
`src/minituner/lora.py`) sobre un pequeño problema de regresión sintético en NumPy. En tu código no
hay `nn.Module` ni autograd: la pérdida, su gradiente y el bucle de descenso de gradiente los
escribes tú. Aquí comprobamos tus gradientes contra el autograd de PyTorch y contra diferencias finitas,
entrenamos un adaptador,
lo comparamos con el mejor ajuste que podría alcanzar cualquier peso y probamos los casos límite que
prueban los tests evaluables.

Mientras el bloque E no esté escrito, la primera celda que llama a `lora_regression_grads` se
detiene con el `NotImplementedError` de tu esqueleto (cómo lo señalan nbval y `check --notebooks`:
en el texto del laboratorio, sección *Los notebooks*). Cuando tus salidas coincidan con las
guardadas, tu bloque E se comporta como la referencia.
""",
    ),
    code(
        """
import matplotlib.pyplot as plt
import numpy as np
import torch

from minituner.i18n import translator
from minituner.lora import lora_regression_grads, train_lora_regression

say = translator("<lang>")  # what the cells below print, in this notebook's language
rng = np.random.default_rng(0)  # the same numbers on every run
torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and rounds alike on every machine
"""
    ),
    md(
        en="""
## The problem, in the math layout

Block E writes a linear map the way a maths text does, `y = x @ W`, with inputs as rows:

| array | shape | here |
|---|---|---|
| `x` | (N, d_in) | (200, 12) |
| `y` | (N, d_out) | (200, 8) |
| `w_base` | (d_in, d_out) | (12, 8), frozen |
| `a` | (d_in, r) | (12, 2) |
| `b` | (r, d_out) | (2, 8) |

This is the **transpose** of blocks A to D, where `nn.Linear` stores its weight as (out, in):
block E's `a` plays the role of `lora_A.T` and its `b` that of `lora_B.T`, so that `x @ (a @ b)`
equals `x @ (lora_B @ lora_A).T`. Mixing the two layouts up is the classic shape bug of this block.

The targets come from the frozen `w_base` plus a hidden change `delta` of rank 2, plus a little
noise (standard deviation 0.1). An adapter of rank r = 2 can represent `delta` exactly; the noise
it cannot predict.
""",
        es="""
## El problema, en la disposición matemática

El bloque E escribe una aplicación lineal como lo hace un texto de matemáticas, `y = x @ W`, con las
entradas como filas:

| array | forma | aquí |
|---|---|---|
| `x` | (N, d_in) | (200, 12) |
| `y` | (N, d_out) | (200, 8) |
| `w_base` | (d_in, d_out) | (12, 8), congelado |
| `a` | (d_in, r) | (12, 2) |
| `b` | (r, d_out) | (2, 8) |

Es la **traspuesta** de los bloques A a D, donde `nn.Linear` guarda su peso como (out, in): la `a`
del bloque E hace el papel de `lora_A.T` y su `b` el de `lora_B.T`, de modo que `x @ (a @ b)` es
igual a `x @ (lora_B @ lora_A).T`. Confundir las dos disposiciones es el error de formas típico de
este bloque.

Los objetivos salen del `w_base` congelado más un cambio oculto `delta` de rango 2, más un poco de
ruido (desviación típica 0,1). Un adaptador de rango r = 2 puede representar `delta` exactamente; el
ruido no lo puede predecir.
""",
    ),
    code(
        """
N, d_in, d_out, r = 200, 12, 8, 2
noise = 0.1
x = rng.normal(size=(N, d_in))
w_base = rng.normal(size=(d_in, d_out)) / np.sqrt(d_in)
delta = rng.normal(size=(d_in, r)) @ rng.normal(size=(r, d_out)) / np.sqrt(d_in)  # rank 2 by construction
y = x @ (w_base + delta) + noise * rng.normal(size=(N, d_out))

a0 = 0.3 * rng.normal(size=(d_in, r))  # random, as lora_A is
b0 = np.zeros((r, d_out))  # zero, as lora_B is: the adapter starts at identity
print("x", x.shape, " y", y.shape, " w_base", w_base.shape, " a0", a0.shape, " b0", b0.shape)
print(say("rank of delta:"), np.linalg.matrix_rank(delta))

# The same update in the (out, in) layout of blocks A-D: lora_A = a.T, lora_B = b.T.
b_demo = rng.normal(size=(r, d_out))
lora_A, lora_B = a0.T, b_demo.T
print("lora_A", lora_A.shape, " lora_B", lora_B.shape, " (lora_B @ lora_A).T", (lora_B @ lora_A).T.shape)
print(say("x @ (a @ b) equals x @ (lora_B @ lora_A).T:"), np.allclose(x @ (a0 @ b_demo), x @ (lora_B @ lora_A).T))
"""
    ),
    md(
        en="""
## The loss, and which gradient goes with it

The loss of block E is

$$L(a, b) = \\frac{1}{N} \\sum_{n, j} \\big((x\\,(W_\\text{base} + a b))_{nj} - y_{nj}\\big)^2 .$$

It sums over the d_out outputs and divides by N only, so it is **d_out times** the element-wise mean
of the squared error (`np.mean` divides by N · d_out). Its gradient with respect to the full weight
`W = w_base + a @ b` is

$$G = \\frac{2}{N}\\, x^\\top (x W - y) \\qquad (d_\\text{in}, d_\\text{out}),$$

and the chain rule through `W = w_base + a @ b` gives `grad_a = G @ b.T` and `grad_b = a.T @ G`.
The factor 2/N belongs to this sum-over-outputs loss; with the element-wise mean, every gradient
would be d_out = 8 times smaller. The graded tests follow the lab's algorithm, so they expect this G.

At the start `b0` is zero, so `grad_a = G @ b0.T` is exactly zero, as `lora_A`'s gradient was at
the first step in block A.
""",
        es="""
## La pérdida, y qué gradiente le corresponde

La pérdida del bloque E es

$$L(a, b) = \\frac{1}{N} \\sum_{n, j} \\big((x\\,(W_\\text{base} + a b))_{nj} - y_{nj}\\big)^2 .$$

Suma sobre las d_out salidas y divide solo entre N, así que es **d_out veces** la media elemento a
elemento del error cuadrático (`np.mean` divide entre N · d_out). Su gradiente respecto al peso
completo `W = w_base + a @ b` es

$$G = \\frac{2}{N}\\, x^\\top (x W - y) \\qquad (d_\\text{in}, d_\\text{out}),$$

y la regla de la cadena a través de `W = w_base + a @ b` da `grad_a = G @ b.T` y `grad_b = a.T @ G`.
El factor 2/N corresponde a esta pérdida que suma sobre las salidas; con la media elemento a
elemento, todos los gradientes serían d_out = 8 veces más pequeños. Los tests evaluables siguen el
algoritmo del laboratorio, así que esperan esta G.

Al principio `b0` vale cero, así que `grad_a = G @ b0.T` es exactamente cero, como lo era el gradiente
de `lora_A` en el primer paso del bloque A.
""",
    ),
    code(
        """
loss0, grad_a0, grad_b0 = lora_regression_grads(x, y, w_base, a0, b0)
residual = x @ (w_base + a0 @ b0) - y
print(say("loss at the start:           {loss:.4f}").format(loss=loss0))
print(f"d_out * np.mean(residual**2): {d_out * np.mean(residual ** 2):.4f}")
print(say("np.mean(residual**2):         {mean:.4f}   (not the lab's loss)").format(mean=np.mean(residual ** 2)))
print("grad_a", grad_a0.shape, " grad_b", grad_b0.shape)
print(say("max |grad_a| with b0 = 0:"), np.abs(grad_a0).max())
""",
        FIRST_CALL_TAG,
    ),
    md(
        en="""
## Check the hand-written gradients against autograd

Autograd computes the same gradients without any derivation: build the loss from PyTorch tensors
that require a gradient, call `backward()`, read `.grad`. Everything in float64, at a random point
where both `a` and `b` are non-zero, so that neither gradient is trivially zero. The two loss values
agree, and the gradients agree up to float64 rounding: the largest difference is of the order of
1e-14 on gradients whose largest entry is in the tens, a relative difference of the order of 1e-16,
float64's own precision. The two computations add the same numbers in a different order. The graded `test_regression_grads_match_autograd` makes the
same comparison on problems of random shapes.

The last line repeats the check with PyTorch's element-wise mean as the loss: its gradients are
exactly d_out = 8 times smaller, the factor the previous section warned about.
""",
        es="""
## Comprobar los gradientes escritos a mano contra autograd

Autograd calcula los mismos gradientes sin ninguna derivación: se construye la pérdida con tensores
de PyTorch que requieren gradiente, se llama a `backward()` y se lee `.grad`. Todo en float64, en un
punto aleatorio en el que tanto `a` como `b` son distintas de cero, para que ninguno de los dos
gradientes sea trivialmente cero. Los dos valores de la pérdida coinciden, y los gradientes coinciden
salvo por el redondeo de float64: la mayor diferencia es del orden de 1e-14 en gradientes cuya mayor
entrada está en las decenas, una diferencia relativa del orden de 1e-16, la propia precisión de
float64. Los dos cálculos suman los mismos números en otro orden. El test evaluable `test_regression_grads_match_autograd` hace la misma comparación con
problemas de formas aleatorias.

La última línea repite la comprobación con la media elemento a elemento de PyTorch como pérdida: sus
gradientes son exactamente d_out = 8 veces más pequeños, el factor del que avisaba la sección
anterior.
""",
    ),
    code(
        """
a1 = rng.normal(size=(d_in, r))
b1 = rng.normal(size=(r, d_out))
loss1, grad_a1, grad_b1 = lora_regression_grads(x, y, w_base, a1, b1)

xt, yt, wt = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(w_base)  # float64, as the NumPy arrays are
at = torch.tensor(a1, requires_grad=True)
bt = torch.tensor(b1, requires_grad=True)
loss_t = ((xt @ (wt + at @ bt) - yt) ** 2).sum() / N
loss_t.backward()
print(say("loss: by hand {hand:.6g}, autograd {autograd:.6g}").format(hand=loss1, autograd=loss_t.item()))
grad_diff = max(np.abs(grad_a1 - at.grad.numpy()).max(), np.abs(grad_b1 - bt.grad.numpy()).max())
grad_size = max(np.abs(grad_a1).max(), np.abs(grad_b1).max())
print(say("max |gradient by hand - autograd| over grad_a and grad_b: {diff:.2e}").format(diff=grad_diff))
print(say("largest |gradient entry|: {size:.1f}, so the relative difference is {relative:.1e}").format(
    size=grad_size, relative=grad_diff / grad_size))

at.grad, bt.grad = None, None
((xt @ (wt + at @ bt) - yt) ** 2).mean().backward()
print(say("grad_a by hand / grad_a of the element-wise mean: {ratio:.3f}").format(
    ratio=np.abs(grad_a1).sum() / at.grad.abs().sum().item()))
"""
    ),
    md(
        en="""
## Check them without autograd: finite differences

Autograd is one oracle; the definition of a derivative is another, and it needs nothing but the
loss. Move one entry of `a` by a small step h up and down, and the change of the loss over the
change of the entry, (L(a + h) − L(a − h)) / 2h, approaches that entry's derivative: a *central
difference*, whose error shrinks like h². The loss below is written out again from the lab's
formula, so the check does not lean on your code for it.

Compare the two gradients by their **relative error**, ‖g − g_fd‖ / (‖g‖ + ‖g_fd‖): a plain
difference means nothing until you know how large the gradients are. This loss is quadratic in `a`
(and in `b`), so here a central difference has no h² error at all; what is left is the rounding of
the loss, which the division by 2h magnifies. With h = 1e-6 in float64 a correct gradient gives a
relative error around 1e-10, and a smaller h gives a larger one. A wrong formula gives one of order 1: the last line feeds
the check the gradient of the element-wise mean, d_out = 8 times too small, and it shows at once.
Loop over every entry of `a` and `b`, one loss evaluation up and one down each; for 40 numbers that
is instant.
""",
        es="""
## Comprobarlos sin autograd: diferencias finitas

Autograd es un oráculo; la definición de derivada es otro, y no necesita más que la pérdida. Mueve una
entrada de `a` un paso pequeño h hacia arriba y hacia abajo, y el cambio de la pérdida entre el cambio
de la entrada, (L(a + h) − L(a − h)) / 2h, se acerca a la derivada respecto de esa entrada: una
*diferencia central*, cuyo error decrece como h². La pérdida de abajo se vuelve a escribir a partir
de la fórmula del laboratorio, para que la comprobación no dependa de tu código.

Compara los dos gradientes por su **error relativo**, ‖g − g_fd‖ / (‖g‖ + ‖g_fd‖): una diferencia
sin más no dice nada hasta saber cuánto miden los gradientes. Esta pérdida es cuadrática en `a` (y en
`b`), así que aquí una diferencia central no tiene ningún error en h²; lo que queda es el redondeo de
la pérdida, que la división entre 2h amplifica. Con h = 1e-6 en float64, un gradiente correcto da un
error relativo de alrededor de 1e-10, y un h más pequeño da uno mayor. Una fórmula equivocada da uno del orden de 1: la
última línea le pasa a la comprobación el gradiente de la media elemento a elemento, d_out = 8 veces
más pequeño, y se ve enseguida. El bucle recorre todas las entradas de `a` y `b`, con una evaluación
de la pérdida hacia arriba y otra hacia abajo por entrada; para 40 números es instantáneo.
""",
    ),
    code(
        """
# Block E's loss, written out again from the lab's formula.
def lab_loss(a, b):
    return np.sum((x @ (w_base + a @ b) - y) ** 2) / N


# The gradient of f at array, entry by entry: (f(array + h e_i) - f(array - h e_i)) / 2h.
def central_differences(f, array, h=1e-6):
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        step = np.zeros_like(array)
        step[index] = h
        grad[index] = (f(array + step) - f(array - step)) / (2 * h)
    return grad


def relative_error(g, g_ref):
    return np.linalg.norm(g - g_ref) / (np.linalg.norm(g) + np.linalg.norm(g_ref))


fd_a = central_differences(lambda a: lab_loss(a, b1), a1)
fd_b = central_differences(lambda b: lab_loss(a1, b), b1)
for name, grad, fd in [("grad_a", grad_a1, fd_a), ("grad_b", grad_b1, fd_b)]:
    print(say("relative error of your {name} against finite differences: {error:.1e}").format(
        name=name, error=relative_error(grad, fd)))
print(say("the same for the gradient of the element-wise mean (wrong): {error:.1e}").format(
    error=relative_error(grad_a1 / d_out, fd_a)))
"""
    ),
    md(
        en="""
## Train, one step at a time

Plain gradient descent, lr = 0.05, 200 steps, from `a0` and `b0`. Each step computes **both**
gradients from the same `(a, b)` and only then updates both: invariant 5 of the blueprint. Updating
`a` first and computing `grad_b` from the new `a` would be a different algorithm, with different
numbers.

The loop below does exactly that with your `lora_regression_grads`, recording the loss before each
step so that we can plot the curve. Then `train_lora_regression` runs the same 200 steps by itself;
it returns `a` and `b` flattened and concatenated, which we split back into their shapes. With the
reference the two results are identical bit for bit; the check accepts any difference below 1e-10,
so that an equivalent formula written in another order also passes (as in the graded
`test_regression_train_matches_loop`).
""",
        es="""
## Entrenar, paso a paso

Descenso de gradiente simple, lr = 0,05, 200 pasos, desde `a0` y `b0`. Cada paso calcula **los dos**
gradientes a partir del mismo par `(a, b)` y solo después actualiza ambas matrices: el invariante 5
de `BLUEPRINT.md`. Actualizar primero `a` y calcular `grad_b` con la `a` nueva sería otro
algoritmo, con otros números.

El bucle de abajo hace exactamente eso con tu `lora_regression_grads`, y anota la pérdida antes de
cada paso para poder dibujar la curva. Después, `train_lora_regression` ejecuta por sí sola los mismos
200 pasos; devuelve `a` y `b` aplanadas y concatenadas, que separamos de nuevo con sus formas. Con la
referencia los dos resultados son idénticos bit a bit; la comprobación acepta cualquier diferencia
por debajo de 1e-10, para que también pase una fórmula equivalente escrita en otro orden (como en el
test evaluable `test_regression_train_matches_loop`).
""",
    ),
    code(
        """
lr, n_steps = 0.05, 200
a, b = a0.copy(), b0.copy()
losses = []
for step in range(n_steps):
    loss, grad_a, grad_b = lora_regression_grads(x, y, w_base, a, b)  # both from the same (a, b)
    losses.append(loss)
    a, b = a - lr * grad_a, b - lr * grad_b  # then both updates
final_loss = lora_regression_grads(x, y, w_base, a, b)[0]
for step in (0, 10, 20, 50, 100, 199):
    print(say("step {step:3}  loss {loss:.4f}").format(step=step, loss=losses[step]))
print(say("after {steps} steps  loss {loss:.4f}").format(steps=n_steps, loss=final_loss))

params = train_lora_regression(x, y, w_base, a0, b0, lr, n_steps)
a_trained = params[: d_in * r].reshape(d_in, r)
b_trained = params[d_in * r :].reshape(r, d_out)
print(say("train_lora_regression returned {shape} {dtype}").format(shape=params.shape, dtype=params.dtype))
loop_diff = max(np.abs(a_trained - a).max(), np.abs(b_trained - b).max())
print(say("train_lora_regression matches the loop (max |diff| < 1e-10):"), bool(loop_diff < 1e-10))
"""
    ),
    md(
        en="""
## How close to the best possible fit?

Ordinary least squares (`np.linalg.lstsq`) finds the weight `W` with the lowest loss of all, with
no rank limit: its loss is a floor that no adapter can go below. Our adapter can only move
`w_base` by a rank-2 matrix, so it ends a little above the floor. The gap is small and it is not a
failure: the full-rank fit spends its 96 free numbers on fitting part of the noise as well. The
adapter fits some noise too, the part that lies along the directions its rank-2 update can take;
that is why its loss ends below the loss of the true weight `w_base + delta`, whose residual is pure
noise. With 40 numbers instead of 96, it fits less of it than the full-rank fit.

The rank-2 adapter has r · (d_in + d_out) = 40 numbers to train, against d_in · d_out = 96 for the
full weight.
""",
        es="""
## ¿Cuánto se acerca al mejor ajuste posible?

Los mínimos cuadrados ordinarios (`np.linalg.lstsq`) encuentran el peso `W` con la pérdida más baja
de todas, sin límite de rango: su pérdida es un suelo por debajo del cual no puede bajar ningún
adaptador. Nuestro adaptador solo puede mover `w_base` con una matriz de rango 2, así que termina un
poco por encima del suelo. La distancia es pequeña y no es un fallo: el ajuste de rango completo
dedica sus 96 números libres a ajustar también parte del ruido. El adaptador también ajusta algo de
ruido, la parte que cae en las direcciones que puede tomar su actualización de rango 2; por eso su
pérdida termina por debajo de la del peso verdadero `w_base + delta`, cuyo residuo es solo ruido. Con
40 números en lugar de 96, ajusta menos ruido que el ajuste de rango completo.

El adaptador de rango 2 tiene r · (d_in + d_out) = 40 números que entrenar, frente a los
d_in · d_out = 96 del peso completo.
""",
    ),
    code(
        """
def loss_of(w):
    return np.sum((x @ w - y) ** 2) / N


w_lstsq = np.linalg.lstsq(x, y, rcond=None)[0]  # (d_in, d_out), the unconstrained optimum
floor = loss_of(w_lstsq)
print(say("least-squares floor (full rank): {loss:.5f}").format(loss=floor))
print(say("LoRA, rank {r}, after training:    {loss:.5f}   gap {gap:.5f}").format(
    r=r, loss=final_loss, gap=final_loss - floor))
print(say("true weight w_base + delta:      {loss:.5f}").format(loss=loss_of(w_base + delta)))
print(say("frozen w_base alone:             {loss:.5f}   (the loss at step 0, as b0 = 0)").format(
    loss=loss_of(w_base)))
print(say("trainable numbers: LoRA {lora}, full weight {full}").format(lora=r * (d_in + d_out), full=d_in * d_out))

fig, ax = plt.subplots(figsize=(5, 3.2), dpi=80)
ax.semilogy(range(n_steps), losses, label=f"LoRA, r = {r}")
ax.axhline(floor, color="gray", linestyle="--", label=say("least-squares floor"))
ax.set_xlabel(say("step"))
ax.set_ylabel(say("loss = sum of squares / N"))
ax.set_title(say("gradient descent on (a, b)"))
ax.legend()
plt.tight_layout()
plt.show()
"""
    ),
    md(
        en="""
## Edge cases

The graded tests also try the degenerate calls. With `n_steps=0` the loop never runs, so the result
is exactly `concat(a0.ravel(), b0.ravel())`. With `lr=0` every step subtracts exactly zero, so
after any number of steps the values are still the initial ones. Neither call may modify the arrays
it was given: `train_lora_regression` works on copies. These are the graded
`test_regression_zero_steps_and_zero_lr` and `test_regression_does_not_modify_inputs`.
""",
        es="""
## Casos límite

Los tests evaluables también prueban las llamadas degeneradas. Con `n_steps=0` el bucle no se
ejecuta nunca, así que el resultado es exactamente `concat(a0.ravel(), b0.ravel())`. Con `lr=0` cada
paso resta exactamente cero, así que después de cualquier número de pasos los valores siguen siendo
los iniciales. Ninguna de las dos llamadas puede modificar los arrays que recibe:
`train_lora_regression` trabaja con copias. Son los tests evaluables
`test_regression_zero_steps_and_zero_lr` y `test_regression_does_not_modify_inputs`.
""",
    ),
    code(
        """
initial = np.concatenate([a0.ravel(), b0.ravel()])
a0_copy, b0_copy = a0.copy(), b0.copy()
no_steps = train_lora_regression(x, y, w_base, a0, b0, lr=0.05, n_steps=0)
zero_lr = train_lora_regression(x, y, w_base, a0, b0, lr=0.0, n_steps=50)
print(say("n_steps=0 returns the initial values: {equal} {shape}").format(
    equal=np.array_equal(no_steps, initial), shape=no_steps.shape))
print(say("lr=0 returns the initial values:      {equal} {shape}").format(
    equal=np.array_equal(zero_lr, initial), shape=zero_lr.shape))
print(say("a0 and b0 unchanged by the calls:     {equal}").format(
    equal=np.array_equal(a0, a0_copy) and np.array_equal(b0, b0_copy)))
"""
    ),
    md(
        en="""
## What to take away

* Block E is the transpose of blocks A to D: `a` is (d_in, r) like `lora_A.T`, `b` is (r, d_out)
  like `lora_B.T`.
* The loss sums over outputs and divides by N; `G = (2/N) x.T (xW - y)` is its gradient, d_out times
  the gradient of the element-wise mean. Autograd agrees with your hand-written gradients up to
  float64 rounding, and so do finite differences, compared by their relative error.
* Each step takes both gradients from the same `(a, b)`, then updates both. A rank-r adapter gets
  close to the full least-squares fit with far fewer trainable numbers.
""",
        es="""
## Lo esencial

* El bloque E es la traspuesta de los bloques A a D: `a` es (d_in, r) como `lora_A.T`, `b` es
  (r, d_out) como `lora_B.T`.
* La pérdida suma sobre las salidas y divide entre N; `G = (2/N) x.T (xW - y)` es su gradiente,
  d_out veces el gradiente de la media elemento a elemento. Autograd coincide con tus gradientes
  escritos a mano salvo por el redondeo de float64, y también las diferencias finitas, comparadas por
  su error relativo.
* Cada paso toma los dos gradientes del mismo par `(a, b)` y después actualiza ambas matrices. Un
  adaptador de rango r se acerca al ajuste completo por mínimos cuadrados con muchos menos números
  entrenables.
""",
    ),
]
