/* sharebench._fastatomic: an atomic fetch-add on an int64 slot of any writable buffer.

   Why it exists: the PyPI wrappers (atomics, atomics2) convert every operand through Python
   code and cost ~6 us per fetch_add; the hardware operation (`lock xadd` on x86-64) costs
   ~2 ns. One METH_FASTCALL function that takes the buffer, checks the slot once and adds is
   ~40 ns from Python: the interpreter's call, not the atomic, is what remains.

   fetch_add(buffer, offset, delta) -> old
       Atomically add `delta` to the int64 at byte `offset` of `buffer` (sequentially
       consistent; wraps around on overflow, as C11 atomics on signed integers do) and return
       the value it held before. `buffer` is any object with a writable, contiguous buffer (a
       SharedMemory's .buf, an mmap, a bytearray, a numpy array). The slot must lie inside the
       buffer and its address must be 8-byte aligned: each call checks both, once.

   add_n(buffer, offset, n) -> int
       `n` separate fetch_add(+1) on the same slot in a C loop, with the GIL released: what
       the hardware costs per operation, without the interpreter. Returns the value the slot
       held after this caller's last add (the slot's current value when n == 0). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define SLOT_BYTES 8

/* Acquire a writable view of `obj` and point `*slot` at the int64 at `offset_obj`.
   On success the caller owns `view` and must release it; on failure nothing is held. */
static int
get_slot(PyObject *obj, PyObject *offset_obj, Py_buffer *view, int64_t **slot)
{
    Py_ssize_t offset = PyLong_AsSsize_t(offset_obj);
    if (offset == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE) < 0) {
        return -1;
    }
    if (offset < 0 || view->len < SLOT_BYTES || offset > view->len - SLOT_BYTES) {
        PyErr_Format(PyExc_IndexError,
                     "offset %zd is out of range: an 8-byte slot must lie inside the "
                     "buffer of %zd bytes", offset, view->len);
        PyBuffer_Release(view);
        return -1;
    }
    char *p = (char *)view->buf + offset;
    if (((uintptr_t)p) % SLOT_BYTES != 0) {
        /* An atomic that straddles two cache lines is a bus-locking "split lock" on x86
           (slow, and a fault where the kernel forbids them) and not atomic elsewhere. */
        PyErr_Format(PyExc_ValueError,
                     "offset %zd is misaligned: the slot's address must be a multiple of 8",
                     offset);
        PyBuffer_Release(view);
        return -1;
    }
    *slot = (int64_t *)p;
    return 0;
}

static PyObject *
fetch_add(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError,
                     "fetch_add(buffer, offset, delta) takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    long long delta = PyLong_AsLongLong(args[2]);
    if (delta == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer view;
    int64_t *slot;
    if (get_slot(args[0], args[1], &view, &slot) < 0) {
        return NULL;
    }
    int64_t old = __atomic_fetch_add(slot, (int64_t)delta, __ATOMIC_SEQ_CST);
    PyBuffer_Release(&view);
    return PyLong_FromLongLong(old);
}

static PyObject *
add_n(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError,
                     "add_n(buffer, offset, n) takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    long long n = PyLong_AsLongLong(args[2]);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (n < 0) {
        PyErr_Format(PyExc_ValueError, "n must be >= 0, not %lld", n);
        return NULL;
    }
    Py_buffer view;
    int64_t *slot;
    if (get_slot(args[0], args[1], &view, &slot) < 0) {
        return NULL;
    }
    int64_t last;
    /* The view stays acquired while the GIL is released: the mapping cannot go away. */
    Py_BEGIN_ALLOW_THREADS
    if (n == 0) {
        last = __atomic_load_n(slot, __ATOMIC_SEQ_CST);
    }
    else {
        int64_t old = 0;
        for (long long i = 0; i < n; i++) {
            old = __atomic_fetch_add(slot, 1, __ATOMIC_SEQ_CST);
        }
        last = (int64_t)((uint64_t)old + 1u);  /* wraps like the atomic did */
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyLong_FromLongLong(last);
}

static PyMethodDef methods[] = {
    {"fetch_add", (PyCFunction)(void (*)(void))fetch_add, METH_FASTCALL,
     PyDoc_STR("fetch_add(buffer, offset, delta, /)\n--\n\n"
               "Atomically add delta to the int64 at byte offset of a writable buffer;\n"
               "return the previous value. The slot must be inside the buffer and\n"
               "8-byte aligned (IndexError / ValueError otherwise).")},
    {"add_n", (PyCFunction)(void (*)(void))add_n, METH_FASTCALL,
     PyDoc_STR("add_n(buffer, offset, n, /)\n--\n\n"
               "n atomic fetch_add(+1) on the int64 at byte offset, in a C loop with the GIL\n"
               "released; return the value after this caller's last add.")},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},  /* no module state; the atomics need no GIL */
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "sharebench._fastatomic",
    .m_doc = PyDoc_STR("Atomic int64 fetch-add on a writable buffer (see fetch_add, add_n)."),
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__fastatomic(void)
{
    return PyModuleDef_Init(&module_def);
}
