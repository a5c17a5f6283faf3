/* The quantisation formula of tomotiff.quantisation in one pass, for the common types.
 *
 * numpy needs six passes over each block (subtract, multiply, fmax, fmin, rint, cast);
 * this loop reads each pixel once and writes its grey level, with the GIL released, so
 * two worker threads run it at once. It computes exactly what the numpy passes compute,
 * operation for operation in float32 (tests/test_quantise_loop.py compares them bit for
 * bit), so which of the two ran never shows in a file:
 *
 *   t = (float32(x) - lo) * scale      two float32 roundings, no fused multiply-add
 *   t = t > 0 ? t : 0                  NaN and -Inf -> 0 (numpy: fmax)
 *   t = t < top ? t : top              +Inf -> top (numpy: fmin)
 *   q = (t + 2**23) - 2**23            round half to even (numpy: rint), exact for 0 <= t < 2**23
 *
 * Built with -ffp-contract=off (setup.py) and never with -ffast-math, which would fold the
 * rounding step away. Inputs: float32 or uint16, C-contiguous, native byte order; outputs:
 * uint8 or uint16.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <stdint.h>
#include <string.h>

/* float arithmetic must round to float after each operation, as numpy's does (not so on x87);
 * without that the build fails, and the optional extension is left out: numpy does the work. */
#if FLT_EVAL_METHOD != 0
#error "float expressions are evaluated in a wider type here"
#endif
#ifdef __FAST_MATH__
#error "built with -ffast-math: the rounding step would be folded away"
#endif

/* AVX2 when the CPU has it (chosen once at load time), else the compiler's baseline. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef SIMD_CLONES
#define SIMD_CLONES
#endif

#define ROUNDING_SHIFT 8388608.0f /* 2**23: adding it leaves no fraction bits */

#define DEFINE_LOOP(NAME, IN_T, OUT_T)                                                          \
    SIMD_CLONES static void NAME(const void *source, void *target, Py_ssize_t n, float lo,     \
                                 float scale, float top) {                                   \
        const IN_T *x = source;                                                              \
        OUT_T *q = target;                                                                   \
        for (Py_ssize_t i = 0; i < n; i++) {                                                 \
            float t = ((float)x[i] - lo) * scale;                                            \
            t = t > 0.0f ? t : 0.0f;                                                         \
            t = t < top ? t : top;                                                           \
            t = (t + ROUNDING_SHIFT) - ROUNDING_SHIFT;                                       \
            q[i] = (OUT_T)(int32_t)t;                                                        \
        }                                                                                    \
    }

DEFINE_LOOP(float32_to_uint8, float, uint8_t)
DEFINE_LOOP(float32_to_uint16, float, uint16_t)
DEFINE_LOOP(uint16_to_uint8, uint16_t, uint8_t)
DEFINE_LOOP(uint16_to_uint16, uint16_t, uint16_t)

typedef void (*loop_fn)(const void *, void *, Py_ssize_t, float, float, float);

/* The loop for a pair of buffer format codes, or NULL ("f" float32, "H" uint16, "B" uint8;
 * an exporter may leave the format NULL, which means "B"). */
static loop_fn choose_loop(const char *in, const char *out) {
    in = in ? in : "B";
    out = out ? out : "B";
    int in_float = strcmp(in, "f") == 0, in_uint16 = strcmp(in, "H") == 0;
    int out_uint8 = strcmp(out, "B") == 0, out_uint16 = strcmp(out, "H") == 0;
    if (in_float && out_uint8) return float32_to_uint8;
    if (in_float && out_uint16) return float32_to_uint16;
    if (in_uint16 && out_uint8) return uint16_to_uint8;
    if (in_uint16 && out_uint16) return uint16_to_uint16;
    return NULL;
}

static PyObject *run(PyObject *module, PyObject *args) {
    PyObject *source, *target;
    float lo, scale, top;
    if (!PyArg_ParseTuple(args, "OOfff:run", &source, &target, &lo, &scale, &top)) return NULL;
    Py_buffer in, out;
    if (PyObject_GetBuffer(source, &in, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    if (PyObject_GetBuffer(target, &out, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&in);
        return NULL;
    }
    PyObject *result = NULL;
    loop_fn loop = choose_loop(in.format, out.format); /* only for formats whose itemsize is not 0 */
    if (loop == NULL) {
        PyErr_Format(PyExc_TypeError, "no loop from format %s to %s (float32 or uint16 to uint8 or uint16)",
                     in.format ? in.format : "B", out.format ? out.format : "B");
    } else if (out.len / out.itemsize != in.len / in.itemsize) {
        PyErr_SetString(PyExc_ValueError, "source and target differ in size");
    } else {
        Py_ssize_t n = in.len / in.itemsize;
        Py_BEGIN_ALLOW_THREADS
        loop(in.buf, out.buf, n, lo, scale, top);
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&in);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"run", run, METH_VARARGS,
     "run(source, target, lo, scale, top): target = quantised source (see the module comment); "
     "both C-contiguous, float32 or uint16 in, uint8 or uint16 out."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_quantise_loop",
                                    "The quantisation formula in one compiled pass.", -1, methods};

PyMODINIT_FUNC PyInit__quantise_loop(void) { return PyModule_Create(&module); }
