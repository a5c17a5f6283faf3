/* The quantisation formula of tomotiff.quantisation, compiled, for float32 and uint16 images.
 *
 * Every pixel comes out equal to the formula evaluated in float64, as the numpy code of
 * quantisation.py computes it (tests/test_quantise_loop.py compares them bit for bit), so
 * which of the two ran never shows in a file. Each kernel reads a pixel once and writes its
 * grey level, with the GIL released, so two worker threads run at once.
 *
 * exact(): the formula itself, in double, one rounding per operation (no fused multiply-add):
 *
 *   c = x > lo ? x : lo;  c = c < hi ? c : hi   clip; NaN and -Inf -> lo, +Inf -> hi
 *   v = ((c - lo) / (hi - lo)) * top            top = 2**bits - 1, from the target's type
 *   q = (v + 2**52) - 2**52                     round half to even, exact for 0 <= v < 2**52
 *
 * float32(): about twice as fast (eight float lanes to a vector, no division):
 *
 *   t = (float32(x) - offset) * scale           two float32 roundings
 *   t = t > 0 ? t : 0;  t = t < top ? t : top   NaN and -Inf -> 0, +Inf -> top
 *   q = (t + 2**23) - 2**23                     round half to even, exact for 0 <= t < 2**23
 *
 * t misses v by at most a bound quantisation.py derives (float32_error_bound), so q can
 * differ from rint(v) only where |t - q| >= 1/2 - that bound. With a limit below it, float32()
 * computes the chunk of such a pixel again with exact(). Without one it checks nothing: quantisation.py
 * calls it so only for uint16 images under a window where it has compared float32's result
 * with the formula's for all 65536 values.
 *
 * lookup() applies quantisation.py's table of the formula to 8- and 16-bit integers.
 *
 * Built with -ffp-contract=off (setup.py) and never with -ffast-math, which would fold the
 * rounding steps away. Inputs: float32 or uint16, C-contiguous, native byte order; outputs:
 * uint8 or uint16.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* float and double arithmetic must round to its own type after each operation, as numpy's
 * does (not so on x87); without that the build fails, and the optional extension is left out:
 * numpy does the work. */
#if FLT_EVAL_METHOD != 0
#error "float expressions are evaluated in a wider type here"
#endif
#ifdef __FAST_MATH__
#error "built with -ffast-math: the rounding steps would be folded away"
#endif

/* AVX-512 (x86-64-v4) or AVX2 when the CPU has it (chosen once at load time), else the
 * compiler's baseline. x86-64-v4's 32 vector registers keep the tie check's loop out of memory
 * (with AVX2's 16 it spills, and costs 10-15 %); gcc knows that name from version 11. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__has_attribute)
#if __has_attribute(target_clones) && !defined(__clang__) && __GNUC__ >= 11
#define SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#elif __has_attribute(target_clones)
#define SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef SIMD_CLONES
#define SIMD_CLONES
#endif

#define SHIFT_FLOAT 8388608.0f         /* 2**23: adding it leaves a float no fraction bits */
#define SHIFT_DOUBLE 4503599627370496.0 /* 2**52: the same for a double */
#define CHUNK 256                       /* pixels checked for ties together: 2 % of chunks redone */

/* The kernels read every constant from here. Known inside a kernel (hi - lo computed there,
 * top a literal), gcc 12 turns the clamps into branches and the loops are not vectorised. */
typedef struct {
    double lo, hi, width, top;  /* the window, hi - lo, 2**bits - 1 */
    float offset, scale, limit; /* float32(): float32(lo), float32(top / (hi - lo)), the tie margin */
} Window;

/* The formula in double, rounded half to even (still a double). */
static inline double formula(double x, double lo, double hi, double width, double top) {
    double c = x > lo ? x : lo;
    c = c < hi ? c : hi;
    const double v = ((c - lo) / width) * top;
    return (v + SHIFT_DOUBLE) - SHIFT_DOUBLE;
}

/* The float32 steps before rounding: t, clamped to [0, top]. */
static inline float scaled(float x, float offset, float scale, float top) {
    float t = (x - offset) * scale;
    t = t > 0.0f ? t : 0.0f;
    return t < top ? t : top;
}

#define DEFINE_EXACT(NAME, IN_T, OUT_T)                                                             \
    SIMD_CLONES static void NAME(const void *source, void *target, Py_ssize_t n, const void *context) { \
        const Window *w = context;                                                                  \
        const IN_T *x = source;                                                                     \
        OUT_T *q = target;                                                                          \
        const double lo = w->lo, hi = w->hi, width = w->width, top = w->top;                        \
        for (Py_ssize_t i = 0; i < n; i++)                                                          \
            q[i] = (OUT_T)(int32_t)formula((double)x[i], lo, hi, width, top);                       \
    }

/* float32 without the tie check: only where every input value has been checked (uint16). */
#define DEFINE_UNCHECKED(NAME, IN_T, OUT_T)                                                         \
    SIMD_CLONES static void NAME(const void *source, void *target, Py_ssize_t n, const void *context) { \
        const Window *w = context;                                                                  \
        const IN_T *x = source;                                                                     \
        OUT_T *q = target;                                                                          \
        const float offset = w->offset, scale = w->scale, top = (float)w->top;                      \
        for (Py_ssize_t i = 0; i < n; i++) {                                                        \
            const float t = scaled((float)x[i], offset, scale, top);                                \
            q[i] = (OUT_T)(int32_t)((t + SHIFT_FLOAT) - SHIFT_FLOAT);                               \
        }                                                                                           \
    }

/* float32 with the tie check, for 8-bit output (at 16 bits the margin would catch 2-3 % of
 * pixels): a chunk in which some |t - q| reaches the limit is computed again by the exact
 * loop, which is vectorised too. The largest |t - q| of a chunk is kept as its bits (for
 * floats >= 0 they order as the values do): an integer maximum costs the loop least. */
#define DEFINE_CHECKED(NAME, IN_T)                                                                  \
    SIMD_CLONES static void NAME(const void *source, void *target, Py_ssize_t n, const void *context) { \
        const Window *w = context;                                                                  \
        const float offset = w->offset, scale = w->scale, top = (float)w->top;                      \
        uint32_t limit;                                                                             \
        memcpy(&limit, &w->limit, sizeof limit);                                                    \
        for (Py_ssize_t start = 0; start < n; start += CHUNK) {                                     \
            const IN_T *x = (const IN_T *)source + start;                                           \
            uint8_t *q = (uint8_t *)target + start;                                                 \
            const Py_ssize_t length = n - start < CHUNK ? n - start : CHUNK;                        \
            uint32_t farthest = 0;                                                                  \
            for (Py_ssize_t i = 0; i < length; i++) {                                               \
                const float t = scaled((float)x[i], offset, scale, top);                            \
                const float r = (t + SHIFT_FLOAT) - SHIFT_FLOAT, distance = t - r;                  \
                uint32_t bits;                                                                      \
                memcpy(&bits, &distance, sizeof bits);                                              \
                bits &= 0x7fffffffu; /* |t - r| */                                                  \
                farthest = farthest > bits ? farthest : bits;                                       \
                q[i] = (uint8_t)(int32_t)r;                                                         \
            }                                                                                       \
            if (farthest >= limit) {                                                                \
                const double lo = w->lo, hi = w->hi, width = w->width, dtop = w->top;               \
                for (Py_ssize_t i = 0; i < length; i++)                                             \
                    q[i] = (uint8_t)(int32_t)formula((double)x[i], lo, hi, width, dtop);            \
            }                                                                                       \
        }                                                                                           \
    }

DEFINE_EXACT(float32_to_uint8, float, uint8_t)
DEFINE_EXACT(float32_to_uint16, float, uint16_t)
DEFINE_EXACT(uint16_to_uint8, uint16_t, uint8_t)
DEFINE_EXACT(uint16_to_uint16, uint16_t, uint16_t)
DEFINE_CHECKED(float32_to_uint8_checked, float)
DEFINE_CHECKED(uint16_to_uint8_checked, uint16_t)
DEFINE_UNCHECKED(uint16_to_uint8_unchecked, uint16_t, uint8_t)
DEFINE_UNCHECKED(uint16_to_uint16_unchecked, uint16_t, uint16_t)

/* The clipping tallies, counted in the same pass: after each block of TALLY pixels is
 * quantised, while it is still in the first-level cache, its grey levels at 0 and at the top
 * and (float32 input, when some pixel went to 0: NaN does) its NaN pixels are counted. Kept
 * apart from the kernels so their loops, and the values they write, stay exactly as they are. */
#define TALLY 2048

/* Counted in lanes as wide as the grey levels, one vector register of them: a comparison adds 0
 * or 1 to its lane, and the lanes are summed into the totals before any can overflow. Wider
 * counters, or a sum every few hundred pixels, would cost as much as quantising. */
#define DEFINE_TALLY_LEVELS(NAME, OUT_T, TOP, LANES)                                            \
    SIMD_CLONES static void NAME(const void *target, Py_ssize_t n, int64_t *counts) {          \
        const OUT_T *q = target;                                                                \
        const Py_ssize_t limit = (Py_ssize_t)(TOP) * (LANES); /* pixels before a lane could overflow */ \
        Py_ssize_t i = 0;                                                                       \
        while (n - i >= (LANES)) {                                                              \
            OUT_T z[LANES] = {0}, t[LANES] = {0};                                               \
            const Py_ssize_t stop = n - i < limit ? n - (LANES) + 1 : i + limit;                \
            for (; i < stop; i += (LANES))                                                      \
                for (int l = 0; l < (LANES); l++) {                                             \
                    z[l] += q[i + l] == 0;                                                      \
                    t[l] += q[i + l] == (TOP);                                                  \
                }                                                                               \
            for (int l = 0; l < (LANES); l++) {                                                 \
                counts[0] += z[l];                                                              \
                counts[1] += t[l];                                                              \
            }                                                                                   \
        }                                                                                       \
        for (; i < n; i++) {                                                                    \
            counts[0] += q[i] == 0;                                                             \
            counts[1] += q[i] == (TOP);                                                         \
        }                                                                                       \
    }

DEFINE_TALLY_LEVELS(tally_uint8, uint8_t, 255, 64)
DEFINE_TALLY_LEVELS(tally_uint16, uint16_t, 65535, 32)

SIMD_CLONES static void tally_nan(const void *source, Py_ssize_t n, int64_t *counts) {
    const float *x = source;
    uint32_t nans[16] = {0}; /* n <= TALLY: no lane overflows */
    Py_ssize_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) nans[l] += x[i + l] != x[i + l];
    for (int l = 0; l < 16; l++) counts[2] += nans[l];
    for (; i < n; i++) counts[2] += x[i] != x[i];
}

/* One pass of a kernel or a lookup over n pixels; context: its Window or its table. */
typedef void (*pass)(const void *source, void *target, Py_ssize_t n, const void *context);

typedef struct {
    int64_t *counts; /* pixels at 0, at the top grey level, NaN; NULL: not counted */
    Py_ssize_t in_size, out_size;
    int float_input;
} Tally;

/* Run ``run`` over n pixels, in blocks of TALLY pixels each tallied straight after when counting. */
static void run_tallied(pass run, const void *source, void *target, Py_ssize_t n, const void *context,
                        const Tally *tally) {
    if (tally->counts == NULL) {
        run(source, target, n, context);
        return;
    }
    for (Py_ssize_t start = 0; start < n; start += TALLY) {
        const char *src = (const char *)source + start * tally->in_size;
        char *dst = (char *)target + start * tally->out_size;
        const Py_ssize_t length = n - start < TALLY ? n - start : TALLY;
        run(src, dst, length, context);
        const int64_t zeros = tally->counts[0];
        (tally->out_size == 1 ? tally_uint8 : tally_uint16)(dst, length, tally->counts);
        if (tally->float_input && tally->counts[0] != zeros) tally_nan(src, length, tally->counts); /* NaN -> 0 */
    }
}

/* The optional counts argument: a writable buffer of three int64 (numpy's int64 array of 3). */
static int get_counts(PyObject *object, Py_buffer *view) {
    if (object == Py_None) return 0;
    if (PyObject_GetBuffer(object, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) return -1;
    const char *format = view->format ? view->format : "B";
    const char code = format[strlen(format) - 1];
    if (view->itemsize != 8 || (code != 'l' && code != 'q') || view->len != 3 * 8) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_TypeError, "counts must be a writable int64 array of 3");
        return -1;
    }
    return 1;
}

typedef struct {
    pass exact, checked, unchecked; /* NULL: none for this pair of types */
    double top;                       /* the output type's largest value */
} Kernels;

/* The kernels for a pair of buffer format codes, or NULL ("f" float32, "H" uint16, "B" uint8;
 * an exporter may leave the format NULL, which means "B"). */
static const Kernels *choose_kernels(const char *in, const char *out) {
    static const Kernels f_b = {float32_to_uint8, float32_to_uint8_checked, NULL, 255.0},
                         f_h = {float32_to_uint16, NULL, NULL, 65535.0},
                         h_b = {uint16_to_uint8, uint16_to_uint8_checked, uint16_to_uint8_unchecked, 255.0},
                         h_h = {uint16_to_uint16, NULL, uint16_to_uint16_unchecked, 65535.0};
    in = in ? in : "B";
    out = out ? out : "B";
    int in_float = strcmp(in, "f") == 0, in_uint16 = strcmp(in, "H") == 0;
    int out_uint8 = strcmp(out, "B") == 0, out_uint16 = strcmp(out, "H") == 0;
    if (in_float && out_uint8) return &f_b;
    if (in_float && out_uint16) return &f_h;
    if (in_uint16 && out_uint8) return &h_b;
    if (in_uint16 && out_uint16) return &h_h;
    return NULL;
}

enum mode { EXACT, CHECKED, UNCHECKED };

/* Check the buffers, then run the kernel of that mode (tallying into counts unless it is None). */
static PyObject *run_kernel(PyObject *source, PyObject *target, PyObject *counts, Window *window, enum mode mode) {
    Py_buffer in, out, tallies;
    const int counting = get_counts(counts, &tallies);
    if (counting < 0) return NULL;
    if (PyObject_GetBuffer(source, &in, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) goto no_source;
    if (PyObject_GetBuffer(target, &out, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) goto no_target;
    PyObject *result = NULL;
    const Kernels *kernels = choose_kernels(in.format, out.format); /* only formats whose itemsize is not 0 */
    pass run = kernels == NULL ? NULL
               : mode == EXACT ? kernels->exact
               : mode == CHECKED ? kernels->checked
                                 : kernels->unchecked;
    if (kernels == NULL) {
        PyErr_Format(PyExc_TypeError, "no loop from format %s to %s (float32 or uint16 to uint8 or uint16)",
                     in.format ? in.format : "B", out.format ? out.format : "B");
    } else if (run == NULL) {
        PyErr_SetString(PyExc_TypeError, mode == CHECKED ? "float32() with a limit writes uint8 only"
                                                         : "float32() without a limit reads uint16 only");
    } else if (out.len / out.itemsize != in.len / in.itemsize) {
        PyErr_SetString(PyExc_ValueError, "source and target differ in size");
    } else {
        Py_ssize_t n = in.len / in.itemsize;
        window->width = window->hi - window->lo;
        window->top = kernels->top;
        const Tally tally = {counting ? tallies.buf : NULL, in.itemsize, out.itemsize, in.format && strcmp(in.format, "f") == 0};
        Py_BEGIN_ALLOW_THREADS
        run_tallied(run, in.buf, out.buf, n, window, &tally);
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&out);
    PyBuffer_Release(&in);
    if (counting) PyBuffer_Release(&tallies);
    return result;
no_target:
    PyBuffer_Release(&in);
no_source:
    if (counting) PyBuffer_Release(&tallies);
    return NULL;
}

static PyObject *exact(PyObject *module, PyObject *args) {
    PyObject *source, *target, *counts = Py_None;
    Window window = {0};
    if (!PyArg_ParseTuple(args, "OOdd|O:exact", &source, &target, &window.lo, &window.hi, &counts)) return NULL;
    return run_kernel(source, target, counts, &window, EXACT);
}

static PyObject *float32(PyObject *module, PyObject *args) {
    PyObject *source, *target, *counts = Py_None;
    Window window = {0};
    window.limit = -1.0f; /* none given (or a negative one): no tie check */
    if (!PyArg_ParseTuple(args, "OOddff|fO:float32", &source, &target, &window.lo, &window.hi, &window.offset,
                          &window.scale, &window.limit, &counts))
        return NULL;
    return run_kernel(source, target, counts, &window, window.limit < 0.0f ? UNCHECKED : CHECKED);
}

/* lookup(): q = table[x] for 8- and 16-bit integers (quantisation.py makes the table with
 * the formula for every value, and passes the pixels' bytes as unsigned numbers), twice as
 * fast as numpy's take, which first widens every index to 64 bits. */
#define DEFINE_LOOKUP(NAME, IN_T, OUT_T)                                                         \
    static void NAME(const void *source, void *target, Py_ssize_t n, const void *table) {       \
        const IN_T *x = source;                                                                  \
        OUT_T *q = target;                                                                       \
        const OUT_T *levels = table;                                                             \
        for (Py_ssize_t i = 0; i < n; i++) q[i] = levels[x[i]];                                  \
    }

DEFINE_LOOKUP(lookup_uint8_to_uint8, uint8_t, uint8_t)
DEFINE_LOOKUP(lookup_uint8_to_uint16, uint8_t, uint16_t)
DEFINE_LOOKUP(lookup_uint16_to_uint8, uint16_t, uint8_t)
DEFINE_LOOKUP(lookup_uint16_to_uint16, uint16_t, uint16_t)

static PyObject *lookup(PyObject *module, PyObject *args) {
    PyObject *source, *target, *table, *counts = Py_None;
    if (!PyArg_ParseTuple(args, "OOO|O:lookup", &source, &target, &table, &counts)) return NULL;
    Py_buffer in, out, levels, tallies;
    const int counting = get_counts(counts, &tallies);
    if (counting < 0) return NULL;
    if (PyObject_GetBuffer(source, &in, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) goto no_source;
    if (PyObject_GetBuffer(target, &out, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) goto no_target;
    if (PyObject_GetBuffer(table, &levels, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) goto no_table;
    const char *in_format = in.format ? in.format : "B", *out_format = out.format ? out.format : "B";
    const char *table_format = levels.format ? levels.format : "B";
    int in_uint8 = strcmp(in_format, "B") == 0, in_uint16 = strcmp(in_format, "H") == 0;
    int out_uint8 = strcmp(out_format, "B") == 0, out_uint16 = strcmp(out_format, "H") == 0;
    pass run = in_uint8 && out_uint8     ? lookup_uint8_to_uint8
               : in_uint8 && out_uint16  ? lookup_uint8_to_uint16
               : in_uint16 && out_uint8  ? lookup_uint16_to_uint8
               : in_uint16 && out_uint16 ? lookup_uint16_to_uint16
                                         : NULL;
    PyObject *result = NULL;
    if (run == NULL) {
        PyErr_Format(PyExc_TypeError, "no lookup from format %s to %s (uint8 or uint16 to uint8 or uint16)", in_format,
                     out_format);
    } else if (strcmp(table_format, out_format) != 0 || levels.len != (Py_ssize_t)out.itemsize << (8 * in.itemsize)) {
        PyErr_SetString(PyExc_ValueError, "the table must hold one target item for every source value");
    } else if (out.len / out.itemsize != in.len / in.itemsize) {
        PyErr_SetString(PyExc_ValueError, "source and target differ in size");
    } else {
        Py_ssize_t n = in.len / in.itemsize;
        const Tally tally = {counting ? tallies.buf : NULL, in.itemsize, out.itemsize, 0};
        Py_BEGIN_ALLOW_THREADS
        run_tallied(run, in.buf, out.buf, n, levels.buf, &tally);
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&levels);
    PyBuffer_Release(&out);
    PyBuffer_Release(&in);
    if (counting) PyBuffer_Release(&tallies);
    return result;
no_table:
    PyBuffer_Release(&out);
no_target:
    PyBuffer_Release(&in);
no_source:
    if (counting) PyBuffer_Release(&tallies);
    return NULL;
}

static PyMethodDef methods[] = {
    {"exact", exact, METH_VARARGS,
     "exact(source, target, lo, hi[, counts]): target = the formula on source, in double (see the module "
     "comment); both C-contiguous, float32 or uint16 in, uint8 or uint16 out. counts (an int64 array of 3, or "
     "None) has the pixels written as 0, as the top grey level, and NaN pixels added to it."},
    {"float32", float32, METH_VARARGS,
     "float32(source, target, lo, hi, offset, scale[, limit[, counts]]): the same, in float32. With a limit "
     ">= 0 (uint8 out), every pixel whose |t - rint(t)| >= limit is computed again by exact(); with none or -1 "
     "(uint16 in), none is: for windows where the caller has checked every input value. counts as exact()'s."},
    {"lookup", lookup, METH_VARARGS,
     "lookup(source, target, table[, counts]): target = table[source]; uint8 or uint16 in, uint8 or uint16 "
     "out, the table of the target's type with an entry for every source value. counts as exact()'s."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_quantise_loop",
                                    "The quantisation formula, compiled: exactly the float64 values.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__quantise_loop(void) { return PyModule_Create(&module); }
