/*
 * clstm.h -- the public C API of clstm, a plain-C LSTM (forward and BPTT).
 *
 * This header is the C user's manual. Everything a C program needs is here.
 *
 * Conventions used throughout
 * ---------------------------
 * Dimension letters: T time steps, B batch, D input size, H hidden size,
 * L layers, G = 4H gate rows, P projection size, R = P if P > 0 else H (the
 * size of h), N = 2 for a bidirectional model else 1 (directions). Every array is dense and row-major (C order);
 * a shape comment such as  x: (T, B, D)  means element x[t][b][d] lives at
 * x + (t*B + b)*D + d. Element type is the model's dtype: `float` for
 * CLSTM_FLOAT32, `double` for CLSTM_FLOAT64; pointers are `void *` so that one
 * API serves both.
 *
 * The model, per layer k and per time step t, gates in PyTorch's order i,f,g,o:
 *     a  = W_ih_k x_t + b_ih_k + W_hh_k h_{t-1} + b_hh_k          (4H)
 *     i  = sigmoid(a[0:H])     f = sigmoid(a[H:2H])
 *     g  = tanh(a[2H:3H])      o = sigmoid(a[3H:4H])
 *     c_t = f * c_{t-1} + i * g
 *     h_t = o * tanh(c_t)
 *     with a projection (P > 0): h_t = W_hr_k (o * tanh(c_t)), of size P
 * Layer 0 reads x; layer k > 0 reads h of layer k-1 (both directions'
 * concatenated, [forward, reverse], and with dropout applied in training when
 * configured). The reverse direction runs each sequence from its last valid
 * step back to its first. Output y is h of the top layer. (ONNX's options
 * in clstm_config change these equations: peepholes, input_forget, clip,
 * and gate_activation, which may replace the sigmoid of i, f and o by the
 * hard sigmoid max(0, min(1, alpha a + beta)).) This is exactly
 * torch.nn.LSTM, and the parameters are stored exactly as torch.nn.LSTM names
 * and shapes them (see clstm_tensor_info below), so a state_dict copies
 * across unchanged.
 *
 * Status codes
 * ------------
 * Every function that can fail returns a clstm_status; CLSTM_OK is 0.
 * On failure no output argument is written, except where noted. The library
 * never prints, never exits, never aborts. clstm_status_string() turns a
 * status into a static English sentence.
 *
 * Ownership
 * ---------
 * A clstm_model owns its parameter block and its gradient block; both are
 * freed by clstm_free(). Everything else (inputs, outputs, the workspace) is
 * owned by the caller; clstm never keeps a pointer to caller memory after a
 * call returns.
 *
 * Threads
 * -------
 * - clstm_forward() in inference mode only reads the model: any number of
 *   threads may run it on one model at once, each with its own workspace.
 * - clstm_forward() in training mode also only reads the model and writes the
 *   caller's workspace: concurrent calls are safe with distinct workspaces.
 * - clstm_backward(), clstm_zero_grad() and clstm_init_params() write the
 *   gradient or parameter block: do not run them concurrently with each other
 *   or with a forward on the same model.
 * - clstm_set_num_threads() is process-wide; do not call it while another
 *   thread is inside clstm.
 * Inside one call, clstm runs its own OpenMP team. BLAS calls are made from
 * that team with BLAS itself single-threaded (clstm sets OpenBLAS's thread
 * count to 1), so OpenMP and OpenBLAS never spin against each other.
 */
#ifndef CLSTM_H
#define CLSTM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(CLSTM_BUILDING_DLL)
#define CLSTM_API __declspec(dllexport)
#elif defined(__GNUC__) && __GNUC__ >= 4
#define CLSTM_API __attribute__((visibility("default")))
#else
#define CLSTM_API
#endif

/* ---------------------------------------------------------------- version */
#define CLSTM_VERSION_MAJOR 0
#define CLSTM_VERSION_MINOR 1
#define CLSTM_VERSION_PATCH 0
#define CLSTM_VERSION_NUMBER \
    (CLSTM_VERSION_MAJOR * 10000 + CLSTM_VERSION_MINOR * 100 + CLSTM_VERSION_PATCH)
#define CLSTM_VERSION_STRING "0.1.0"

/* The version of the library actually linked: compare with
 * CLSTM_VERSION_NUMBER to detect a header/library mismatch. */
CLSTM_API unsigned clstm_version_number(void);
CLSTM_API const char *clstm_version_string(void);

/* ----------------------------------------------------------------- status */
typedef enum {
    CLSTM_OK = 0,
    CLSTM_ERR_NULL = 1,        /* a required pointer argument is NULL */
    CLSTM_ERR_SIZE = 2,        /* a size is zero, negative or inconsistent */
    CLSTM_ERR_OVERFLOW = 3,    /* sizes whose product overflows */
    CLSTM_ERR_NOMEM = 4,       /* an allocation failed */
    CLSTM_ERR_WORKSPACE = 5,   /* workspace NULL or smaller than required */
    CLSTM_ERR_DTYPE = 6,       /* unknown dtype */
    CLSTM_ERR_STATE = 7,       /* backward without a matching training forward */
    CLSTM_ERR_UNSUPPORTED = 8, /* not in this build or for this model (e.g. a BLAS
                                  backend, training a quantized model) */
    CLSTM_ERR_ARG = 9,         /* any other invalid argument (index, config) */
    CLSTM_ERR_IO = 10,         /* open, read, write, fsync or rename failed */
    CLSTM_ERR_FORMAT = 11,     /* malformed or inconsistent model file */
    CLSTM_STATUS_COUNT_ = 12   /* not a status: one past the last */
} clstm_status;

/* A static, never-NULL English description; unknown codes give
 * "unknown status". Thread-safe. */
CLSTM_API const char *clstm_status_string(clstm_status s);

/* ----------------------------------------------------------------- config */
typedef enum { CLSTM_FLOAT32 = 0, CLSTM_FLOAT64 = 1 } clstm_dtype;

typedef enum {
    CLSTM_BACKEND_DEFAULT = 0, /* BLAS when compiled in, otherwise naive */
    CLSTM_BACKEND_BLAS = 1,    /* CBLAS gemm (OpenBLAS) */
    CLSTM_BACKEND_NAIVE = 2    /* plain C loops: slow, the tests' oracle */
} clstm_backend;

/* Input encodings of the whole model (clstm_model_forward). */
typedef enum {
    CLSTM_ENCODING_NONE = 0,      /* x: (T, B, D) real features */
    CLSTM_ENCODING_ONEHOT = 1,    /* ids: (T, B) int32 tokens in [0, V); the
                                     LSTM sees the one-hot vector (D = V) */
    CLSTM_ENCODING_EMBEDDING = 2  /* ids: (T, B); the LSTM sees row id of
                                     the table embedding.weight (V, D) */
} clstm_encoding;

/* Model configuration. Always start from clstm_config_default(): new fields
 * are only ever added at the end, and struct_size tells the library which
 * fields the caller knows about. */
typedef struct {
    size_t struct_size;    /* = sizeof(clstm_config), set by the default */
    int64_t input_size;    /* D >= 1 */
    int64_t hidden_size;   /* H >= 1 */
    int64_t num_layers;    /* L >= 1 */
    clstm_dtype dtype;     /* CLSTM_FLOAT32 (default) or CLSTM_FLOAT64 */
    clstm_backend backend; /* CLSTM_BACKEND_DEFAULT */
    int64_t proj_size;     /* P: 0 (no projection) or 1 <= P < H */
    int bidirectional;     /* 0 or 1 */
    double dropout;        /* 0 <= p < 1: dropout on the inputs of layers 1..L-1
                              in training forwards (as torch.nn.LSTM); p is
                              applied at a resolution of 2^-24 */
    /* ONNX's LSTM options (not in torch.nn.LSTM); all off by default: */
    int peepholes;         /* 0 or 1: i and f see p_i*c_{t-1}, p_f*c_{t-1}
                              and o sees p_o*c_t (tensor peephole_l{k}) */
    int input_forget;      /* 0 or 1: couple the gates, f = 1 - i */
    double clip;           /* 0: none; > 0: every gate pre-activation is
                              clipped to [-clip, clip] (forward only: backward
                              returns CLSTM_ERR_UNSUPPORTED) */
    /* The whole model around the LSTM stack (see "The whole model" below);
     * all off by default, which leaves a bare LSTM: */
    clstm_encoding encoding; /* how clstm_model_forward reads its input */
    int64_t vocab_size;      /* V >= 1 with ONEHOT (then D = V) or EMBEDDING;
                                0 otherwise */
    int64_t output_size;     /* O: 0 for no head; else a Linear head maps
                                each step's y (N*R) to O outputs */
    int softmax;             /* 0 or 1: the head's outputs are the logits of
                                a categorical distribution (a classifier or
                                language model). Informative: the forward
                                still returns logits; see clstm_softmax.
                                Needs output_size > 0 */
    /* An encoder-decoder (see "Sequence to sequence" below); all 0 by
     * default, which leaves a model with no decoder. target_vocab > 0
     * makes the model above the encoder (it needs EMBEDDING and no head)
     * and adds an attention decoder: */
    int64_t target_vocab;     /* Vt >= 4: <s>, </s>, <unk> and the tokens */
    int64_t target_embedding; /* Et >= 1: the target tokens' embedding size */
    int64_t decoder_hidden;   /* Hd >= 1 */
    int64_t decoder_layers;   /* 1..CLSTM_MAX_DECODER_LAYERS */
    int attention;            /* CLSTM_ATTENTION_GENERAL or CLSTM_ATTENTION_DOT
                                 (needs Hd = N*R) */
    int64_t attentional_size; /* A >= 1: the attentional vector, fed back */
    /* A reverse-only LSTM (ONNX's direction="reverse", Keras's
     * go_backwards=True): */
    int reverse; /* 0 or 1: the one direction of a unidirectional model runs
                    each sequence from its last valid step back to its first,
                    as the reverse half of a bidirectional model does; y at t
                    is h after reading x_{len-1} down to x_t, and hT, cT the
                    state after x_0. No streaming (clstm_state_reset: ARG).
                    Needs bidirectional = 0 */
    /* The gate activation f of i, f and o (ONNX's activations[0]; the cell
     * and output activations stay tanh): */
    int gate_activation; /* CLSTM_GATE_SIGMOID (default) or
                            CLSTM_GATE_HARD_SIGMOID: max(0, min(1, alpha*z +
                            beta)), the default recurrent activation of
                            Keras 2 (alpha 0.2, beta 0.5; Keras 3's is
                            alpha 1/6, beta 0.5). Its gradient is alpha
                            where the gate lies strictly between 0 and 1,
                            else 0. Composes with peepholes, input_forget
                            (f = 1 - i) and clip; not with a decoder
                            (target_vocab > 0: ARG) */
    double gate_alpha;   /* alpha: finite, > 0; default 0.2 (ONNX's) */
    double gate_beta;    /* beta: finite; default 0.5. Both must keep their
                            defaults with CLSTM_GATE_SIGMOID */
} clstm_config;

/* Gate activations (clstm_config.gate_activation). */
enum { CLSTM_GATE_SIGMOID = 0, CLSTM_GATE_HARD_SIGMOID = 1 };

/* Attention scores of an encoder-decoder's decoder state h over the
 * encoder outputs s_j (Luong et al. 2015): h . W_a s_j, or h . s_j. */
enum { CLSTM_ATTENTION_GENERAL = 0, CLSTM_ATTENTION_DOT = 1 };
#define CLSTM_MAX_DECODER_LAYERS 8

/* D = H = L = 1, float32, default backend, no projection, unidirectional,
 * no dropout, raw input, no head, no decoder, forward, sigmoid gates
 * (gate_alpha 0.2, gate_beta 0.5). A config from a caller compiled against
 * an older header is accepted: clstm 0.1.0's (ending at `clip`), the
 * whole-model one's (ending at `softmax`), the encoder-decoder one's
 * (ending at `attentional_size`) and the reverse one's (ending at
 * `reverse`, its size rounded up to the struct's alignment); the fields it
 * lacks take these defaults. Any other struct_size below the library's is
 * ARG. */
CLSTM_API clstm_config clstm_config_default(void);

/* ------------------------------------------------------------------ model */
typedef struct clstm_model clstm_model;

/* Create a model; on success *out owns it (free with clstm_free). Parameters
 * are initialised from `seed` as by clstm_init_params; gradients are zero.
 * Errors: NULL (cfg or out), SIZE (a size below 1, proj_size >= H, a
 * vocab_size with encoding NONE or below 1 with a token encoding, ONEHOT
 * with input_size != vocab_size, output_size < 0), OVERFLOW (parameter
 * count), DTYPE, UNSUPPORTED (backend), ARG (struct_size, an unknown
 * encoding or backend, a flag other than 0 or 1, dropout outside [0, 1),
 * clip < 0, softmax without a head, reverse with bidirectional, an unknown
 * gate_activation, gate_alpha not finite and > 0 or gate_beta not finite,
 * gate_alpha or gate_beta not the defaults with sigmoid gates, hard sigmoid
 * gates with a decoder), NOMEM. *out is NULL on failure. */
CLSTM_API clstm_status clstm_create(const clstm_config *cfg, uint64_t seed,
                                    clstm_model **out);

/* Free a model and its blocks. NULL is accepted and does nothing. */
CLSTM_API void clstm_free(clstm_model *m);

/* The configuration the model was created with; initialise *out with
 * clstm_config_default() first. A caller built against
 * clstm 0.1.0's header sets out->struct_size to its sizeof(clstm_config) (as
 * its clstm_config_default() does) and gets only the fields it knows; for
 * any other value the whole struct is written and struct_size is the
 * library's. */
CLSTM_API clstm_status clstm_get_config(const clstm_model *m, clstm_config *out);

/* Re-initialise every parameter as torch does by default: the LSTM's
 * elements drawn from U(-1/sqrt(H), 1/sqrt(H)) (torch.nn.LSTM), the
 * embedding's from N(0, 1) (torch.nn.Embedding), the head's from
 * U(-1/sqrt(N*R), 1/sqrt(N*R)) (torch.nn.Linear), in block order, from one
 * generator seeded with `seed` (so a model's LSTM part does not depend on
 * whether it has an embedding or head). Values are drawn in double and rounded to the
 * dtype, so the same seed gives the same model on every machine, and float32
 * and float64 models of one seed agree to float32 rounding. Errors: NULL,
 * UNSUPPORTED (a quantized model: its int8 weights would not change). */
CLSTM_API clstm_status clstm_init_params(clstm_model *m, uint64_t seed);

/* ------------------------------------------------------------- parameters */
/* The parameter block and the gradient block: `*n` elements of the model's
 * dtype each, contiguous, owned by the model, valid until clstm_free. The
 * caller may read and write them (e.g. to load weights or apply an update).
 * Layout, for k = 0..L-1, then for each direction (suffix "" and, when
 * bidirectional, "_reverse"), in order (D_0 = D, D_k = N*R for k > 0):
 *     weight_ih_l{k} (4H, D_k), weight_hh_l{k} (4H, R),
 *     bias_ih_l{k} (4H),        bias_hh_l{k} (4H),
 *     weight_hr_l{k} (P, H)     only when P > 0
 *     peephole_l{k} (3H)        only with peepholes: p_i, p_f, p_o
 * Rows of each (4H, .) tensor are gates i, f, g, o, H rows each. This is
 * torch.nn.LSTM's parameter order (peepholes, which torch lacks, last).
 * The whole model's tensors follow all of the LSTM's:
 *     embedding.weight (V, D)   only with CLSTM_ENCODING_EMBEDDING
 *     head.weight (O, N*R), head.bias (O)   only when O > 0
 * so the LSTM's tensors are always a prefix of the block, at the offsets a
 * bare LSTM of the same config has. */
CLSTM_API clstm_status clstm_params(clstm_model *m, void **data, size_t *n);
/* A quantized model (inference only) has no gradient block: clstm_grads
 * sets *data = NULL and *n = 0, and clstm_zero_grad does nothing. */
CLSTM_API clstm_status clstm_grads(clstm_model *m, void **data, size_t *n);

/* Set every gradient to zero. */
CLSTM_API clstm_status clstm_zero_grad(clstm_model *m);

#define CLSTM_NAME_MAX 48
typedef struct {
    char name[CLSTM_NAME_MAX]; /* e.g. "weight_ih_l0_reverse", NUL-terminated */
    size_t offset;             /* in elements from the block's start */
    int ndim;                  /* 1 or 2 */
    int64_t shape[2];          /* shape[1] is 1 when ndim == 1 */
} clstm_tensor_info;

/* Number of named tensors (4 per layer and direction, +1 with projection,
 * +1 with peepholes; +1 for the embedding, +2 for the head). */
CLSTM_API clstm_status clstm_num_tensors(const clstm_model *m, int64_t *n);
/* Describe tensor `index` (0 <= index < n); ARG if out of range. The same
 * offsets index the gradient block. */
CLSTM_API clstm_status clstm_tensor_info_get(const clstm_model *m, int64_t index,
                                             clstm_tensor_info *out);

/* -------------------------------------------------------------- workspace */
/* Bytes of workspace clstm_forward needs for a batch of T steps and B
 * sequences. train = 1: what forward must keep for backward (grows with T);
 * the same workspace is then passed to clstm_backward. train = 0: inference,
 * independent of T for unidirectional models (sequences are processed in
 * chunks); a bidirectional model needs whole sequences, so its inference
 * workspace grows with T. A training workspace
 * is never smaller than the inference one for the same B. Errors: NULL, SIZE,
 * OVERFLOW (also, with train = 0, when the call's (T, B, .) arrays x and y
 * could not exist in memory, although the workspace itself does not grow
 * with T), UNSUPPORTED (train = 1 on a quantized model: inference only).
 * The same holds for clstm_model_workspace_size, and for the forward calls
 * with train set. */
CLSTM_API clstm_status clstm_workspace_size(const clstm_model *m, int64_t T,
                                            int64_t B, int train, size_t *bytes);

/* ---------------------------------------------------------------- compute */
/* Options of one forward call; start from clstm_run_options_default().
 * Fields are only ever added at the end. */
typedef struct {
    size_t struct_size;     /* = sizeof(clstm_run_options), set by the default */
    int train;              /* 0: inference; else keep what backward needs */
    const int64_t *lengths; /* (B) valid steps of each sequence, 0 <= len <= T,
                               any order; or NULL: all T. Inputs past a
                               sequence's length are ignored (may be NaN),
                               outputs there are 0, and its final state is
                               taken at its own last valid step (the initial
                               state when len = 0). Copied: the caller's array
                               need not outlive the call. */
    uint64_t dropout_seed;  /* training with dropout: the masks are a pure
                               function of (seed, layer, position), so equal
                               seeds give equal masks */
} clstm_run_options;

/* train = 0, lengths = NULL, dropout_seed = 0. */
CLSTM_API clstm_run_options clstm_run_options_default(void);

/* Run the LSTM over a whole sequence.
 *     x:  (T, B, D)      input, required
 *     h0: (N*L, B, R)    initial hidden state (index layer*N + direction),
 *                        or NULL for zeros
 *     c0: (N*L, B, H)    initial cell state, or NULL for zeros
 *     y:  (T, B, N*R)    output: h of the top layer at every step, required;
 *                        with N = 2, [forward, reverse] along the last axis
 *     hT: (N*L, B, R)    final hidden state of every layer, or NULL
 *     cT: (N*L, B, H)    final cell state of every layer, or NULL
 *     ws: workspace of at least clstm_workspace_size(m, T, B, opt->train)
 * Inputs may not overlap outputs, with one exception for streaming: h0 may
 * be the very same pointer as hT, and c0 as cT, to advance a state in place
 * (also in training: the workspace keeps its own copy of what backward
 * needs, so overwriting h0 does not affect clstm_backward).
 * With train the workspace keeps the activations (and a copy of x and of the
 * lengths) for clstm_backward; the model is not changed. forward does not
 * allocate.
 * Non-finite numbers follow IEEE arithmetic, as torch.nn.LSTM does: a NaN
 * in x at (t, b) (a valid position) makes sequence b's outputs NaN from t
 * on in the forward direction (up to t in the reverse one, and the later
 * layers' outputs from there) and its final state NaN; other sequences are
 * unaffected (rows never mix). A pre-activation of +-inf saturates its
 * gate (sigmoid or hard sigmoid to 0 or 1, tanh to +-1), so an Inf input can give finite
 * outputs; inf - inf or 0 * inf gives NaN, which then spreads as above.
 * The same holds for NaN or Inf in h0 and c0 (from step 0) and, in
 * clstm_backward, in dy (through the gradients). Nothing is checked or
 * reported: test the outputs (the Python trainer stops on a non-finite
 * loss).
 * Errors: NULL (m, x, y, opt), SIZE, OVERFLOW, WORKSPACE, ARG (a length
 * outside 0..T, or opt->struct_size too small). On error the outputs are
 * not written. */
CLSTM_API clstm_status clstm_forward_ex(const clstm_model *m, int64_t T, int64_t B,
                                        const void *x, const void *h0, const void *c0,
                                        void *y, void *hT, void *cT,
                                        const clstm_run_options *opt, void *ws,
                                        size_t ws_bytes);

/* Streaming: keep h (N*L, B, R) and c (N*L, B, H) and one inference
 * workspace (its size does not depend on T), and call clstm_forward_ex on
 * each chunk (T >= 1 steps) with h0 = hT = h and c0 = cT = c. Nothing is
 * allocated per chunk. A sequence fed in chunks gives the result of one
 * call over the whole sequence up to float rounding (the chunks group the
 * input projection into different gemms). Bidirectional models have no
 * streaming semantics (the reverse direction needs the end of the
 * sequence); neither have reverse models.
 * clstm_state_reset zeroes stream b (0 <= b < B) of h and c, leaving the
 * other streams untouched. Errors: NULL, SIZE (B < 1), OVERFLOW (the (B, .)
 * state arrays could not exist), ARG (b out of range, or a bidirectional
 * or reverse model). */
CLSTM_API clstm_status clstm_state_reset(const clstm_model *m, int64_t B, void *h, void *c,
                                         int64_t b);

/* clstm_forward_ex with options {train, lengths = NULL, dropout_seed = 0}. */
CLSTM_API clstm_status clstm_forward(const clstm_model *m, int64_t T, int64_t B,
                                     const void *x, const void *h0, const void *c0,
                                     void *y, void *hT, void *cT, int train,
                                     void *ws, size_t ws_bytes);

/* Backpropagation through time for the training forward whose workspace is
 * `ws` (same T and B; its lengths and dropout masks are used). Gradients of a
 * loss with respect to:
 *     dy:  (T, B, N*R)  the output y, or NULL for zeros
 *     dhT: (N*L, B, R)  the final hidden state, or NULL for zeros
 *     dcT: (N*L, B, H)  the final cell state, or NULL for zeros
 * give
 *     dx:  (T, B, D)    gradient w.r.t. x (0 past each length), or NULL
 *     dh0: (N*L, B, R)  gradient w.r.t. h0, or NULL
 *     dc0: (N*L, B, H)  gradient w.r.t. c0, or NULL
 * and ADD the parameter gradients into the gradient block (clstm_zero_grad
 * resets it). Backward consumes the workspace: a second backward needs a new
 * training forward. Errors: NULL, SIZE, WORKSPACE, STATE (the workspace does
 * not hold a training forward of this model with this T and B, or was
 * already consumed), UNSUPPORTED (a model with clip). */
CLSTM_API clstm_status clstm_backward(clstm_model *m, int64_t T, int64_t B,
                                      const void *dy, const void *dhT,
                                      const void *dcT, void *dx, void *dh0,
                                      void *dc0, void *ws, size_t ws_bytes);

/* ------------------------------------------------------- the whole model */
/* A model of the form  input encoding -> LSTM stack -> Linear head:
 *     e_t = x_t                      CLSTM_ENCODING_NONE       (D reals)
 *     e_t = onehot(ids_t)            CLSTM_ENCODING_ONEHOT     (D = V)
 *     e_t = embedding.weight[ids_t]  CLSTM_ENCODING_EMBEDDING  (D)
 *     y_t = LSTM(e)_t                (N*R), as clstm_forward_ex
 *     z_t = head.weight y_t + head.bias    (O), when output_size > 0
 * The functions below run the whole model. clstm_forward_ex, clstm_backward
 * and clstm_workspace_size are thin wrappers over the same code path that
 * run the LSTM stack alone on any model (their x is e): a bare LSTM is a
 * model with no encoding and no head. On such a model the two families are
 * the same computation and their workspaces are interchangeable (a
 * training forward by one may be followed by the other's backward).
 * Thread safety as for clstm_forward_ex. */

/* Bytes of workspace for clstm_model_forward/clstm_model_backward, as
 * clstm_workspace_size (inference memory independent of T for
 * unidirectional models). Errors: NULL, SIZE, OVERFLOW. */
CLSTM_API clstm_status clstm_model_workspace_size(const clstm_model *m, int64_t T, int64_t B,
                                                  int train, size_t *bytes);

/* Run the whole model.
 *     x:   (T, B, D) reals, with CLSTM_ENCODING_NONE; else must be NULL
 *     ids: (T, B) int32 token ids in [0, V), with ONEHOT or EMBEDDING; else
 *          must be NULL. Past a sequence's length ids are ignored.
 *     h0, c0, hT, cT, opt: as clstm_forward_ex (in-place streaming too),
 *          except that opt may be NULL: the defaults (inference, all T
 *          steps valid)
 *     out: (T, B, O) the head's outputs (logits when softmax is set), or
 *          (T, B, N*R) = y when the model has no head; 0 past each length
 *     ws:  at least clstm_model_workspace_size(m, T, B, opt->train) bytes
 * Errors: as clstm_forward_ex (OVERFLOW also when out or ids could not
 * exist in memory), plus NULL (x or ids missing for the
 * encoding), ARG (x or ids given where the encoding wants the other, or an
 * id outside [0, V) at a valid step; checked before anything is written). */
CLSTM_API clstm_status clstm_model_forward(const clstm_model *m, int64_t T, int64_t B,
                                           const void *x, const int32_t *ids, const void *h0,
                                           const void *c0, void *out, void *hT, void *cT,
                                           const clstm_run_options *opt, void *ws,
                                           size_t ws_bytes);

/* Backpropagation through the training clstm_model_forward whose workspace
 * is `ws`, as clstm_backward:
 *     dout: (T, B, O) (or (T, B, N*R) without a head) gradient w.r.t. out,
 *           or NULL for zeros; ignored past each length
 *     dhT, dcT, dh0, dc0: as clstm_backward
 *     dx:   (T, B, D) gradient w.r.t. x with CLSTM_ENCODING_NONE, or NULL;
 *           must be NULL for token ids (they have no gradient)
 * ADDS every parameter gradient (head, LSTM, embedding rows of the ids
 * seen) into the gradient block. Errors: as clstm_backward, plus ARG (dx
 * given for a token model). */
CLSTM_API clstm_status clstm_model_backward(clstm_model *m, int64_t T, int64_t B,
                                            const void *dout, const void *dhT, const void *dcT,
                                            void *dx, void *dh0, void *dc0, void *ws,
                                            size_t ws_bytes);

/* Row-wise softmax: p[r] = softmax(z[r] / temperature) for rows r < n of
 * O = k elements, computed stably (max subtracted, in double). z and p may
 * be the same array. temperature > 0 and finite. Errors: NULL, SIZE
 * (n < 1 or k < 1), OVERFLOW (n * k elements could not exist in memory),
 * DTYPE, ARG (temperature). A row holding NaN gives NaN
 * probabilities. Thread-safe. */
CLSTM_API clstm_status clstm_softmax(clstm_dtype dtype, int64_t n, int64_t k, const void *z,
                                     double temperature, void *p);

/* Losses of the head's outputs, with their gradient, masked by lengths.
 * Common arguments: out (T, B, O) as clstm_model_forward's; lengths (B) or
 * NULL (all T); last_only = 0: every valid step (t < len_b) counts; 1: only
 * each sequence's last valid step t = len_b - 1 (classification, regression
 * and forecasting from a whole sequence; a sequence with len_b = 0 counts
 * nowhere). The loss is the MEAN over the counted steps (over the counted
 * steps and the O outputs for MSE): *loss receives it, in double, and
 * dout, when not NULL, receives d loss / d out (0 at steps that do not
 * count), ready for clstm_model_backward. With nothing counted, *loss = 0
 * and dout = 0. Errors: NULL, SIZE, OVERFLOW (T*B*O), DTYPE, ARG (a length
 * outside 0..T, or a target outside [0, O) at a counted step); on error
 * nothing is written. Thread-safe.
 *
 * Softmax cross-entropy (out are logits): targets (T, B) int32 class ids, of
 * which only the counted steps are read (so with last_only, only
 * targets[len_b - 1][b]); loss = -log softmax(out)[target]. */
CLSTM_API clstm_status clstm_loss_xent(clstm_dtype dtype, int64_t T, int64_t B, int64_t O,
                                       const void *out, const int32_t *targets,
                                       const int64_t *lengths, int last_only, double *loss,
                                       void *dout);
/* The same with label smoothing eps in [0, 1] (torch.nn.functional.
 * cross_entropy's label_smoothing): the target distribution is
 * (1 - eps) onehot(target) + eps / O, so loss = -(1 - eps) log p[target] -
 * (eps / O) sum_j log p[j]; eps = 0 is clstm_loss_xent exactly. ARG for eps
 * outside [0, 1] or NaN. */
CLSTM_API clstm_status clstm_loss_xent_smoothed(clstm_dtype dtype, int64_t T, int64_t B,
                                                int64_t O, const void *out,
                                                const int32_t *targets,
                                                const int64_t *lengths, int last_only,
                                                double label_smoothing, double *loss,
                                                void *dout);

/* Mean squared error: targets (T, B, O) reals (only counted steps read);
 * loss = mean (out - target)^2. */
CLSTM_API clstm_status clstm_loss_mse(clstm_dtype dtype, int64_t T, int64_t B, int64_t O,
                                      const void *out, const void *targets,
                                      const int64_t *lengths, int last_only, double *loss,
                                      void *dout);

/* ------------------------------------------------------------------- CTC */
/* Connectionist temporal classification (Graves et al., ICML 2006): a
 * sequence labelling loss for unsegmented data (a text line's pixel
 * columns, an utterance's frames) whose targets are shorter than the
 * input, with no alignment given, and its decoders. Class `blank` (any of
 * the C classes) is CTC's "no label"; a labelling is read off a path by
 * merging repeated classes and then dropping blanks.
 *
 * Common arguments: logits (T, B, C) as clstm_model_forward's output of a
 * head with C outputs (unnormalised: log_softmax is applied per step, in
 * double); input_lengths (B) in 0..T, or NULL (all T): sequence b uses
 * steps t < input_lengths[b]. Every CTC function computes in double, runs
 * each sequence on one thread (clstm_set_num_threads; the results do not
 * depend on the count) and is thread-safe. Errors: NULL, SIZE, OVERFLOW,
 * DTYPE, NOMEM, ARG (a length out of range, blank outside [0, C), a
 * target that is blank or outside [0, C), a bad reduction, width or
 * nbest); on error nothing is written. */
typedef enum {
    CLSTM_REDUCE_NONE = 0, /* the B losses */
    CLSTM_REDUCE_SUM = 1,  /* their sum */
    CLSTM_REDUCE_MEAN = 2  /* each divided by max(1, its target length), then
                              the mean over B (PyTorch's "mean") */
} clstm_reduction;

/* The loss -log p(targets | logits) of each sequence, reduced, with its
 * gradient, as torch.nn.functional.ctc_loss(log_softmax(logits), ...):
 * - targets (B, S) int32, row b's first target_lengths[b] (0..S) read;
 *   targets may be NULL when S = 0 (every target empty). Empty targets
 *   score the all-blank path; repeated labels need a blank between them,
 *   so sequence b needs input_lengths[b] >= target_lengths[b] + (equal
 *   neighbours).
 * - loss: B doubles for CLSTM_REDUCE_NONE, else one.
 * - dlogits (T, B, C) or NULL: d loss / d logits (for NONE, of the sum of
 *   the B losses), 0 at steps t >= input_lengths[b].
 * A sequence with no alignment (too short, or every path through a -inf
 * logit) has loss +inf and a NaN gradient at its valid steps, as in
 * PyTorch; with zero_infinity, loss 0 and gradient 0 (it then counts in
 * the mean as 0). NaN logits give NaN. */
CLSTM_API clstm_status clstm_ctc_loss(clstm_dtype dtype, int64_t T, int64_t B, int64_t C,
                                      const void *logits, const int64_t *input_lengths,
                                      const int32_t *targets, int64_t S,
                                      const int64_t *target_lengths, int32_t blank,
                                      clstm_reduction reduction, int zero_infinity,
                                      double *loss, void *dlogits);

/* Best-path decoding: each step's most likely class (the first of equal
 * ones; NaN never wins unless the whole row is NaN), repeats merged,
 * blanks dropped. labels (B, T) int32: row b's first label_lengths[b] (B
 * int64) entries are its labelling. */
CLSTM_API clstm_status clstm_ctc_greedy(clstm_dtype dtype, int64_t T, int64_t B, int64_t C,
                                        const void *logits, const int64_t *input_lengths,
                                        int32_t blank, int32_t *labels, int64_t *label_lengths);

/* The widest beam clstm_ctc_beam_search accepts. */
#define CLSTM_CTC_MAX_WIDTH 65536

/* Prefix beam search: at every step each of the `width` best labellings so
 * far is extended by every class, equal labellings are merged (their
 * paths' probabilities summed, as CTC defines a labelling's probability),
 * and the `width` most probable are kept. The nbest (1..width) best at
 * the end, most probable first, ties by labelling: labels (B, nbest, T)
 * int32, label_lengths (B, nbest) and scores (B, nbest), the natural log
 * of each labelling's probability summed over the paths the beam kept (the
 * exact log p(labelling | logits) when no path was pruned). A beam with
 * fewer than nbest labellings (short inputs) fills the rest with length 0
 * and score -inf. Memory: about T * width * 12 + width * C * 48 bytes per
 * thread. */
CLSTM_API clstm_status clstm_ctc_beam_search(clstm_dtype dtype, int64_t T, int64_t B,
                                             int64_t C, const void *logits,
                                             const int64_t *input_lengths, int32_t blank,
                                             int64_t width, int64_t nbest, int32_t *labels,
                                             int64_t *label_lengths, double *scores);

/* Prefix beam search with shallow fusion of a language model: a
 * character model (a token model, unidirectional, with a head over its V
 * tokens, e.g. one trained by `clstm train`) scores each labelling as it
 * grows. Entries rank by log p_CTC + weight * log p_LM + bonus * length,
 * where log p_LM sums, over the labelling's labels, the model's log
 * probability of each label's token after the tokens before it (after
 * `start` first, where start >= 0: a line's text follows a newline in
 * running text); scores are that sum. A class the model has no token
 * for (tokens[k] = -1) scores as the least likely token there and does
 * not advance the model. The model runs one step per new labelling
 * (at most width a step), one sequence at a time. Errors as
 * clstm_ctc_beam_search, and ARG for a model that cannot serve (not a
 * token model with a head over its V tokens, bidirectional or reverse), a
 * tokens entry outside -1..V-1, the blank's entry not -1, start outside
 * -1..V-1, or a weight or bonus that is not finite. Memory: per node
 * (1 + T * width of them) the model's state and V + 1 doubles. */
typedef struct {
    const clstm_model *model; /* the language model */
    const int32_t *tokens;    /* (C) the model's token for each class, or -1 */
    int32_t start;            /* the token fed before a labelling, or -1: none */
    double weight;            /* the language model's weight (0: plain search) */
    double bonus;             /* added per label (offsets the LM's cost per token) */
} clstm_ctc_lm;

CLSTM_API clstm_status clstm_ctc_beam_search_lm(clstm_dtype dtype, int64_t T, int64_t B,
                                                int64_t C, const void *logits,
                                                const int64_t *input_lengths, int32_t blank,
                                                int64_t width, int64_t nbest,
                                                const clstm_ctc_lm *lm, int32_t *labels,
                                                int64_t *label_lengths, double *scores);

/* --------------------------------------------------- sequence to sequence */
/* An encoder-decoder is a model whose config has target_vocab > 0 (Python:
 * clstm.Seq2Seq; examples/translate.c). Its LSTM stack, with the EMBEDDING
 * encoding of the source ids (vocab_size V), is the encoder; its outputs S
 * (Ts, B, N*R) are what a decoder attends to (Luong et al. 2015):
 *
 *     x_t   = [emb_t(y_t); f_{t-1}]          decoder.embedding.weight, f_{-1} = 0
 *     h_t   = LSTM_dec(x_t)                  decoder.{weight,bias}_{ih,hh}_l{k};
 *                                            zero initial state
 *     a_tj  = softmax_j(h_t . W_a S_j)       attention.weight (GENERAL), or
 *             softmax_j(h_t . S_j) (DOT), over the source's valid steps
 *                                            (none: a = 0)
 *     ctx_t = sum_j a_tj S_j
 *     f_t   = tanh(W_c [ctx_t; h_t])         attention.combine.weight
 *     z_t   = W_o f_t + b_o                  decoder.out.{weight,bias}
 *
 * Target ids: 0 is <s>, fed first; 1 is </s>, which ends a target; 2 is
 * <unk>. Teacher forcing feeds the target, <s> first: tgt_in (Tt, B) =
 * <s> y_1 .. y_n, trained against y_1 .. y_n </s> with tgt_lens = n + 1.
 * All of it is one parameter block and one model file. */

/* Bytes of workspace for a forward over (Ts, Tt, B), with train the
 * backward's too. Errors: NULL, ARG (not an encoder-decoder), UNSUPPORTED
 * (quantized), SIZE, OVERFLOW. */
CLSTM_API clstm_status clstm_seq2seq_workspace_size(const clstm_model *m, int64_t Ts,
                                                    int64_t Tt, int64_t B, int train,
                                                    size_t *bytes);
/* Teacher forcing: logits (Tt, B, Vt) of every target step, 0 past each
 * target's length.
 *     src:      (Ts, B) int32 source ids in [0, V); ignored past src_lens
 *     src_lens: (B) in [0, Ts]
 *     tgt_in:   (Tt, B) int32 target ids in [0, Vt); ignored past tgt_lens
 *     tgt_lens: (B) in [0, Tt]
 *     train:    keep what clstm_seq2seq_backward needs; dropout_seed as
 *               clstm_run_options' (the encoder's dropout)
 * Errors: NULL, ARG (an id out of range at a valid step, or not an
 * encoder-decoder), SIZE (a length), UNSUPPORTED, WORKSPACE, OVERFLOW. */
CLSTM_API clstm_status clstm_seq2seq_forward(const clstm_model *m, int64_t Ts, int64_t Tt,
                                             int64_t B, const int32_t *src,
                                             const int64_t *src_lens, const int32_t *tgt_in,
                                             const int64_t *tgt_lens, void *logits, int train,
                                             uint64_t dropout_seed, void *ws, size_t ws_bytes);
/* Backpropagation through the training forward whose workspace is ws:
 * dlogits (Tt, B, Vt), ignored past each target's length. ADDS every
 * parameter's gradient (decoder, attention, encoder, both embeddings)
 * into the gradient block. Errors: as the forward, and STATE (ws holds no
 * training forward of this model and these sizes). */
CLSTM_API clstm_status clstm_seq2seq_backward(clstm_model *m, int64_t Ts, int64_t Tt,
                                              int64_t B, const void *dlogits, void *ws,
                                              size_t ws_bytes);

/* Decoding: a prefix-free beam search per source (width K; width 1 is
 * greedy decoding, argmax at every step), batched over B sources. Every
 * live hypothesis is extended by every token; a source's candidates are
 * taken best total log-probability first (ties: the earlier hypothesis,
 * then the lower token); one ending in </s> (id 1) is finished, the others
 * become the next live hypotheses until K are live. A source stops when K
 * have finished or none is live; at max_len tokens its live hypotheses
 * finish as they are. Hypotheses rank by log p / len^alpha (len: the
 * tokens emitted, </s> included; alpha = 0: raw log p).
 *     tokens:  (B, nbest, max_len) int32, each hypothesis's tokens without
 *              </s>, zero-padded
 *     lengths: (B, nbest) their lengths; -1 where a source has fewer than
 *              nbest (scores -inf there)
 *     scores:  (B, nbest) the normalized scores, best first
 * Errors: NULL, ARG (alpha not finite and >= 0, nbest not in [1, width],
 * a source id out of range, not an encoder-decoder), SIZE, OVERFLOW,
 * UNSUPPORTED, WORKSPACE. The workspace may be a training one's too: it
 * then holds no training forward any more. Only the live hypotheses are
 * computed at each step (a finished source costs nothing). */
#define CLSTM_SEQ2SEQ_MAX_WIDTH 4096
CLSTM_API clstm_status clstm_seq2seq_decode_workspace_size(const clstm_model *m, int64_t Ts,
                                                           int64_t B, int64_t width,
                                                           int64_t max_len, size_t *bytes);
CLSTM_API clstm_status clstm_seq2seq_beam_search(const clstm_model *m, int64_t Ts, int64_t B,
                                                 const int32_t *src, const int64_t *src_lens,
                                                 int64_t width, int64_t max_len, double alpha,
                                                 int64_t nbest, int32_t *tokens,
                                                 int64_t *lengths, double *scores, void *ws,
                                                 size_t ws_bytes);

/* ------------------------------------------------------------- vocabulary */
/* A token model (ONEHOT or EMBEDDING) may carry its vocabulary: V distinct
 * Unicode characters, token id i being the i-th, stored as one UTF-8
 * string (saved in the file's metadata as "vocab"). The model owns a copy.
 *
 * clstm_set_vocab: `bytes` bytes of UTF-8 (no NUL needed) holding exactly V
 * distinct code points, none of them U+0000; replaces any previous one.
 * Errors: NULL, ARG (not a token model, invalid UTF-8, wrong count,
 * duplicates, U+0000), NOMEM; on error the previous vocabulary is kept.
 * Not thread-safe with readers of the vocab.
 * clstm_get_vocab: *utf8 = the string (NUL-terminated) and *bytes its
 * length, or NULL and 0 when the model has none.
 * clstm_vocab_token: the UTF-8 bytes of token `id` (pointing into the
 * model's string, not NUL-terminated). Errors: NULL, ARG (id out of range
 * or no vocabulary).
 * clstm_vocab_lookup: the id of the character that starts `text` (`len`
 * bytes), and in *used the bytes it takes. Errors: NULL, ARG (no
 * vocabulary, len = 0, invalid UTF-8, or a character not in the
 * vocabulary). On ARG, *used is the length of the character when the UTF-8
 * was valid (so a caller can skip an unknown character) and 0 when it was
 * not (or there is no vocabulary); *id is not written. */
CLSTM_API clstm_status clstm_set_vocab(clstm_model *m, const char *utf8, size_t bytes);
CLSTM_API clstm_status clstm_get_vocab(const clstm_model *m, const char **utf8, size_t *bytes);
CLSTM_API clstm_status clstm_vocab_token(const clstm_model *m, int32_t id, const char **s,
                                         size_t *len);
CLSTM_API clstm_status clstm_vocab_lookup(const clstm_model *m, const char *text, size_t len,
                                          int32_t *id, size_t *used);

/* --------------------------------------------------------------- metadata */
/* User metadata: up to CLSTM_MAX_METADATA string pairs that travel with the
 * model (saved in the file's __metadata__ next to the config, kept by
 * clstm_load: every key that is not one of the config's). E.g. the trainer
 * stores its task and the normalisation of a forecaster here.
 *
 * clstm_set_metadata: set key to value (copied), or remove key when value
 * is NULL (removing an absent key is OK). key: 1..CLSTM_METADATA_KEY_MAX
 * bytes of UTF-8, not a config key ("format", "format_version",
 * "input_size", "hidden_size", "num_layers", "proj_size", "bidirectional",
 * "dropout", "peepholes", "input_forget", "clip", "dtype", "encoding",
 * "vocab_size", "output_size", "softmax", "vocab"; for an encoder-decoder
 * also the decoder's config fields, for a reverse model or one with hard
 * sigmoid gates "reverse" and the decoder's field names (in their files a
 * "target_vocab" means a decoder), and for the latter also
 * "gate_activation", "gate_alpha" and "gate_beta");
 * value: valid UTF-8 of at
 * most CLSTM_METADATA_VALUE_MAX bytes. Errors: NULL (m or key), ARG (a key
 * or value as above, or a new key past CLSTM_MAX_METADATA), NOMEM.
 * clstm_get_metadata: *value = the value (owned by the model, valid until
 * it is set again or the model freed), or NULL when absent.
 * clstm_metadata_count / clstm_metadata_at: enumerate the pairs in the
 * order they were set (ARG for i out of range).
 * Not thread-safe with other calls on the same model's metadata. */
#define CLSTM_MAX_METADATA 48
#define CLSTM_METADATA_KEY_MAX 256
#define CLSTM_METADATA_VALUE_MAX 65536
CLSTM_API clstm_status clstm_set_metadata(clstm_model *m, const char *key, const char *value);
CLSTM_API clstm_status clstm_get_metadata(const clstm_model *m, const char *key,
                                          const char **value);
CLSTM_API clstm_status clstm_metadata_count(const clstm_model *m, int64_t *n);
CLSTM_API clstm_status clstm_metadata_at(const clstm_model *m, int64_t i, const char **key,
                                         const char **value);

/* ---------------------------------------------------------------- thread. */
/* Number of threads clstm uses for its compute (process-wide; default: the
 * OpenMP default, normally the number of cores). n < 1 returns ARG. Small
 * problems use fewer threads, see below. */
CLSTM_API clstm_status clstm_set_num_threads(int n);
CLSTM_API int clstm_get_num_threads(void);

/* A tuning knob, process-wide: the recurrent multiply-adds per time step
 * (4 B H^2) each thread must get, or the team shrinks (down to one thread):
 * below it, the per-step barrier costs more than a thread gives, and a
 * team is fragile when another process competes for the cores. Default
 * CLSTM_DEFAULT_MIN_THREAD_WORK; 0 uses every thread whenever H allows
 * (slices of at least 8 hidden units), as the tests do to exercise the
 * split on small models. macs < 0 returns ARG. Results do not depend on it
 * beyond float rounding of the thread split. */
#define CLSTM_DEFAULT_MIN_THREAD_WORK 65536
CLSTM_API clstm_status clstm_set_min_thread_work(int64_t macs);
CLSTM_API int64_t clstm_get_min_thread_work(void);

/* 1 if the library was built with a BLAS backend, else 0. */
CLSTM_API int clstm_has_blas(void);

/* ----------------------------------------------------------- model files */
/* A model as a file, in the safetensors format (readable by the
 * `safetensors` package, and by torch.nn.LSTM.load_state_dict for torch's
 * features):
 *     u64 little-endian N | N bytes of UTF-8 JSON header | data buffer
 * The header maps each tensor name (clstm_tensor_info's: weight_ih_l0, ...,
 * _reverse, weight_hr_l{k}, peephole_l{k}) to {"dtype": "F32" or "F64",
 * "shape": [...], "data_offsets": [begin, end]} (bytes, relative to the data
 * buffer), plus "__metadata__", string -> string, holding the config:
 * "format": "clstm", "format_version": "1", "input_size", "hidden_size",
 * "num_layers", "proj_size", "bidirectional", "peepholes", "input_forget"
 * (decimal integers; the flags "0"/"1"), "dropout", "clip" (decimal, written
 * with %.17g so they round-trip; written and read with the C library's
 * strtod/printf, so the process's LC_NUMERIC locale must use '.', as the
 * default "C" locale does), "dtype" ("float32"/"float64"), and for the
 * whole model "encoding" ("none", "onehot", "embedding"), "vocab_size",
 * "output_size", "softmax" and, when the model has one, "vocab" (the
 * vocabulary's UTF-8 string, JSON-escaped). An encoder-decoder's file has
 * "format_version": "2" and its decoder's config fields, spelt as in
 * clstm_config ("attention": "general" or "dot"); in a version 1 file
 * those names are user metadata. A reverse model's file has
 * "format_version": "3" and "reverse": "1" (and the decoder's fields where
 * it has "target_vocab"), so that a reader that predates the flag refuses
 * the file instead of running the model forward. A model with hard sigmoid
 * gates has "format_version": "4", "reverse" ("0" or "1"),
 * "gate_activation": "hard_sigmoid", "gate_alpha" and "gate_beta" (%.17g),
 * so that an older reader refuses it instead of running sigmoid gates.
 * A version v file holds every key its version implies: version 2 the
 * decoder's (target_vocab required), 3 and 4 "reverse" (the decoder's
 * where "target_vocab" is present), 4 also the three gate keys. Tensor
 * names are clstm_tensor_info's,
 * including "embedding.weight", "head.weight" and "head.bias" (and the
 * decoder's, see "Sequence to sequence"). Data are the
 * parameter block, little-endian, tensors in block order. The backend is not
 * saved. Big-endian hosts get CLSTM_ERR_UNSUPPORTED from every function below.
 */

/* Write m to `path`, atomically: the file is written to
 * "<path>.tmp.<pid>.<n>" in the same directory, flushed and fsync'ed, then
 * renamed over `path`, and the directory is fsync'ed (best effort). On any
 * failure the temporary file is removed and a previous file at `path` is
 * left untouched. Errors: NULL, NOMEM, SIZE (over 4096 tensors, which
 * clstm_load refuses: e.g. more than 682 layers with every option), IO (open,
 * write, fsync, close or rename failed, e.g. a missing or read-only
 * directory). Only reads m: may run
 * concurrently with forwards and other saves of the same model, not with
 * calls that write its parameters. */
CLSTM_API clstm_status clstm_save(const clstm_model *m, const char *path);
/* clstm_save, also setting *why (when why is not NULL) to a static English
 * sentence saying which step failed (NULL on success, and on NULL m or
 * path, where the status says it all). */
CLSTM_API clstm_status clstm_save_ex(const clstm_model *m, const char *path, const char **why);

/* Read a model from `path`; on success *out owns a new model (free with
 * clstm_free) with the file's config, the default backend, the file's
 * parameters and zero gradients. *out is NULL on failure. The file is read
 * whole into memory (peak memory: file size + model).
 * The loader trusts nothing: every size and offset is checked before use; N
 * must be 1..10^8 bytes (safetensors' limit) and at most the file's remaining
 * size; the header must start with '{' (as safetensors requires) and be
 * strict JSON (string escapes validated, integers without sign, fraction or
 * overflow, no duplicate keys, nothing but white space after the object,
 * no tensor entry field besides dtype, shape, data_offsets, no nesting
 * deeper than the format's own three levels, so the parser never recurses,
 * and it allocates only in proportion to N); at most 4096
 * tensors and 80 metadata entries; the tensors must tile the data buffer
 * exactly (sorted by begin: the first at 0, each beginning where the last
 * ended, the last ending at the end of the file: no gap, overlap or trailing
 * bytes), each with end - begin = its shape's bytes; and the tensors must be
 * exactly the model's (every name once, exact shape; unknown names are an
 * error), all of one dtype, F32 for a float32 model, F64 for float64.
 * Missing metadata (e.g. a file written by safetensors.torch.save_file from a
 * torch.nn.LSTM state_dict) takes defaults: "format" and "format_version" may
 * be absent (if present they must be "clstm" and "1" to "4"); proj_size 0,
 * bidirectional, peepholes, input_forget 0, dropout 0, clip 0; dtype that of
 * the tensors; input_size from weight_ih_l0 (4H, D), hidden_size from
 * weight_hh_l0 (4H, R), num_layers from the number of weight_ih_l{k};
 * encoding "embedding" with vocab_size from embedding.weight (V, D) when that
 * tensor is present, else "none"; output_size from head.weight (O, N*R) when
 * present, else 0; softmax 0. A vocab must hold exactly vocab_size distinct
 * characters (see clstm_set_vocab). Every other metadata key becomes user
 * metadata (clstm_get_metadata); a file with more than CLSTM_MAX_METADATA
 * of them, or one too long, is FORMAT.
 * The flags also accept "true"/"false"/"True"/"False".
 * Errors: NULL, IO (cannot open or read, or not a regular file), FORMAT
 * (anything wrong with the contents), NOMEM. Thread-safe (no shared state). */
CLSTM_API clstm_status clstm_load(const char *path, clstm_model **out);

/* clstm_load from `size` bytes at `data` (an embedded model; fuzzing). The
 * caller keeps ownership of data; nothing past data + size is read. Errors:
 * NULL, FORMAT, NOMEM. Thread-safe. */
CLSTM_API clstm_status clstm_load_buffer(const void *data, size_t size, clstm_model **out);
/* clstm_load_buffer, also setting *why (when why is not NULL) as clstm_load_ex
 * does. Thread-safe. */
CLSTM_API clstm_status clstm_load_buffer_ex(const void *data, size_t size, clstm_model **out,
                                            const char **why);

/* m's file in memory: the bytes clstm_save would write, byte for byte (an
 * embedded model; a checkpoint; no file system). Two calls, as for the
 * workspace: clstm_save_buffer_size sets *size to the exact byte count, the
 * caller allocates it, and clstm_save_buffer writes the file into
 * data[0, capacity) and sets *written to the count. The caller owns data;
 * nothing past data + capacity is written, and clstm keeps no pointer to it.
 * The size depends on the config, vocabulary and metadata only: setting
 * metadata between the two calls can change it.
 * Errors: NULL (m, size, data or written NULL), SIZE (capacity below the
 * size: then *written is set to the size needed and data is not written;
 * or over 4096 tensors, as clstm_save), NOMEM (the header is built in a
 * temporary allocation, freed before return), OVERFLOW (a file of over
 * SIZE_MAX bytes). Only reads m: thread-safety as clstm_save. */
CLSTM_API clstm_status clstm_save_buffer_size(const clstm_model *m, size_t *size);
CLSTM_API clstm_status clstm_save_buffer(const clstm_model *m, void *data, size_t capacity,
                                         size_t *written);

/* clstm_load, also setting *why (when why is not NULL) to a static English
 * sentence naming what was wrong on IO and FORMAT errors (NULL on success or
 * when there is nothing more to say). Thread-safe. */
CLSTM_API clstm_status clstm_load_ex(const char *path, clstm_model **out, const char **why);

/* ------------------------------------------------------ quantized models */
/* An int8 model for inference: a copy of a trained model whose weight
 * matrices are int8, run by the same clstm_model_forward / clstm_forward_ex
 * calls with the same float32 inputs, outputs and states.
 *
 * What is quantized, and how:
 * - Weights: weight_ih, weight_hh, weight_hr, embedding.weight and
 *   head.weight become int8 with one float32 scale per row (per output):
 *   s = max|w_row| / 127, q = rint(w / s) (ties to even) in [-127, 127]
 *   (an all-zero row gets s = 1). Biases, peepholes and head.bias stay float32.
 * - Activations: every product's input rows (x_t of each layer, h_{t-1},
 *   o*tanh(c_t) before a projection, the head's input) are quantized when
 *   they are used, per row (one sequence at one step): s = max|row| / 127,
 *   q = rint(row * 127 / max|row|). A row of zeros stays zero; a row with
 *   NaN or Inf gives NaN products.
 * - Products: exact int32 sums of q_x * q_w, then (float)sum * (s_x * s_w).
 *   The embedding's rows are looked up as q * s.
 * - Float32: the gate arithmetic, the cell state, the biases, the head's
 *   bias, the peepholes and the clip.
 * Every instruction-set path (AVX-512 VNNI, AVX-VNNI, AVX2, portable C,
 * chosen at run time) computes the same int32 sums and the same float
 * operations after them: the outputs are the same bits on every path, and
 * at every thread count. Each float operation is rounded on its own (no
 * fused multiply-add), so C code that follows these steps in the same
 * order gives the same bits too: the models clstm.export_c writes do.
 *
 * Error to expect, against the float32 model: each weight moves by up to
 * half its row's scale (max|w_row| / 254), each activation by half its
 * row's, and the recurrence carries the differences forward. On the
 * trained models of bench/quantized.py (README's table: character models,
 * a classifier, a forecaster) the LSTM's outputs differ by 6e-4 to 2.4e-3
 * on average and 0.01 to 0.15 at most (rare transient spikes in single
 * units, almost all of it from the weights' rounding alone), about half
 * of ONNX Runtime's int8 LSTM on the same weights; validation nats moved
 * by at most 0.011%, accuracy by at most 0.37 points, RMSE by at most
 * 0.16%.
 *
 * A quantized model is inference only: clstm_backward, clstm_model_backward
 * and training forwards return CLSTM_ERR_UNSUPPORTED, and it has no
 * gradient block (clstm_grads gives NULL and 0). Its parameter block
 * (clstm_params) holds float32 copies of every tensor, the quantized ones
 * dequantized (q * s): read them, do not write them (a weight written there
 * is not seen by the int8 products; a bias or peephole is). Its files hold
 * the int8 tensors as safetensors "I8" with their scales as "<name>.scale"
 * (F32, one per row), and "quantized": "int8" in the metadata: about a
 * quarter of the float32 file. */

/* A quantized copy of src (float32 or float64; its vocabulary and user
 * metadata come along); *out owns it. Errors: NULL, ARG (src already
 * quantized, or a parameter NaN, Inf or beyond float32's range; a row of
 * weights too small for float32 becomes zeros), UNSUPPORTED (a matrix with over
 * 65536 columns: its int32 sums could overflow; an encoder-decoder), NOMEM. */
CLSTM_API clstm_status clstm_quantize(const clstm_model *src, clstm_model **out);
/* 1 if m is a quantized model, else 0 (also for NULL). */
CLSTM_API int clstm_is_quantized(const clstm_model *m);
/* The int8 form of tensor `index` of a quantized model: *q its (rows,
 * cols) weights, *scale its rows' scales, valid until clstm_free. Errors:
 * NULL, ARG (index out of range, or a tensor that is not int8). */
CLSTM_API clstm_status clstm_tensor_int8(const clstm_model *m, int64_t index, const int8_t **q,
                                         const float **scale);
/* The int8 kernel in use: "avx512-vnni", "avx-vnni", "avx2" or
 * "portable" (the best this CPU and OS run). Thread-safe. */
CLSTM_API const char *clstm_int8_kernel(void);
/* Use no int8 kernel above `name` (one of the names above), for tests and
 * comparisons: the outputs do not change, only the speed. Process-wide;
 * do not call it while another thread runs a quantized model. Errors:
 * NULL, ARG (an unknown name). */
CLSTM_API clstm_status clstm_int8_kernel_limit(const char *name);

/* -------------------------------------------------------------- optimizers */
/* One optimizer step over a flat parameter vector and its gradient, as
 * torch.optim computes it, so a C program can train or fine-tune (e.g. on
 * clstm_params/clstm_grads). n elements of `dtype` each; the state arrays
 * (velocity; Adam's m and v) are the caller's, n elements, zero before the
 * first step. params and state are updated in place; grads is only read.
 * Arrays must not overlap. Errors: NULL, SIZE (n = 0), OVERFLOW (n elements
 * could not exist in memory), DTYPE, ARG (a
 * setting out of range: lr < 0, momentum < 0, betas outside [0, 1),
 * eps <= 0, weight_decay < 0, NaN anywhere, nesterov without momentum,
 * step < 1, struct_size too small). Thread-safe on distinct arrays. */
typedef struct {
    size_t struct_size;  /* = sizeof(clstm_sgd_config), set by the default */
    double lr;           /* 0.01 */
    double momentum;     /* 0 */
    double dampening;    /* 0 */
    double weight_decay; /* 0: L2, added to the gradient */
    int nesterov;        /* 0 */
} clstm_sgd_config;

typedef struct {
    size_t struct_size;  /* = sizeof(clstm_adam_config), set by the default */
    double lr;           /* 0.001 */
    double beta1, beta2; /* 0.9, 0.999 */
    double eps;          /* 1e-8 */
    double weight_decay; /* 0 */
    int decoupled;       /* 0: Adam (L2 added to the gradient); 1: AdamW
                            (parameters shrink by lr * weight_decay) */
} clstm_adam_config;

CLSTM_API clstm_sgd_config clstm_sgd_config_default(void);
CLSTM_API clstm_adam_config clstm_adam_config_default(void);

/* velocity: torch's momentum buffer; unused (may be NULL) when momentum = 0.
 * first_step != 0 on the first step, when torch sets the buffer to the
 * gradient itself (no dampening). */
CLSTM_API clstm_status clstm_sgd_step(clstm_dtype dtype, size_t n, void *params,
                                      const void *grads, void *velocity, int first_step,
                                      const clstm_sgd_config *cfg);

/* step: the 1-based count of this step, for the bias corrections. */
CLSTM_API clstm_status clstm_adam_step(clstm_dtype dtype, size_t n, void *params,
                                       const void *grads, void *m, void *v, int64_t step,
                                       const clstm_adam_config *cfg);

#ifdef __cplusplus
}
#endif
#endif /* CLSTM_H */
