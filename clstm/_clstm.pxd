# Declarations of the C API (include/clstm.h) for the Cython binding.
from libc.stdint cimport int8_t, int32_t, int64_t, uint64_t

cdef extern from "clstm.h" nogil:
    ctypedef enum clstm_status:
        CLSTM_OK
        CLSTM_ERR_NULL
        CLSTM_ERR_SIZE
        CLSTM_ERR_OVERFLOW
        CLSTM_ERR_NOMEM
        CLSTM_ERR_WORKSPACE
        CLSTM_ERR_DTYPE
        CLSTM_ERR_STATE
        CLSTM_ERR_UNSUPPORTED
        CLSTM_ERR_ARG
        CLSTM_ERR_IO
        CLSTM_ERR_FORMAT

    ctypedef enum clstm_dtype:
        CLSTM_FLOAT32
        CLSTM_FLOAT64

    ctypedef enum clstm_backend:
        CLSTM_BACKEND_DEFAULT
        CLSTM_BACKEND_BLAS
        CLSTM_BACKEND_NAIVE

    ctypedef enum clstm_encoding:
        CLSTM_ENCODING_NONE
        CLSTM_ENCODING_ONEHOT
        CLSTM_ENCODING_EMBEDDING

    ctypedef struct clstm_config:
        size_t struct_size
        int64_t input_size
        int64_t hidden_size
        int64_t num_layers
        clstm_dtype dtype
        clstm_backend backend
        int64_t proj_size
        int bidirectional
        double dropout
        int peepholes
        int input_forget
        double clip
        clstm_encoding encoding
        int64_t vocab_size
        int64_t output_size
        int softmax
        int64_t target_vocab
        int64_t target_embedding
        int64_t decoder_hidden
        int64_t decoder_layers
        int attention
        int64_t attentional_size
        int reverse
        int gate_activation
        double gate_alpha
        double gate_beta

    ctypedef struct clstm_run_options:
        size_t struct_size
        int train
        const int64_t *lengths
        uint64_t dropout_seed

    ctypedef struct clstm_model:
        pass

    ctypedef struct clstm_tensor_info:
        char name[48]
        size_t offset
        int ndim
        int64_t shape[2]

    unsigned CLSTM_VERSION_NUMBER
    unsigned clstm_version_number()
    const char *clstm_version_string()
    const char *clstm_status_string(clstm_status s)
    clstm_config clstm_config_default()
    clstm_status clstm_create(const clstm_config *cfg, uint64_t seed, clstm_model **out)
    void clstm_free(clstm_model *m)
    clstm_status clstm_get_config(const clstm_model *m, clstm_config *out)
    clstm_status clstm_params(clstm_model *m, void **data, size_t *n)
    clstm_status clstm_grads(clstm_model *m, void **data, size_t *n)
    clstm_status clstm_zero_grad(clstm_model *m)
    clstm_status clstm_num_tensors(const clstm_model *m, int64_t *n)
    clstm_status clstm_tensor_info_get(const clstm_model *m, int64_t index,
                                       clstm_tensor_info *out)
    clstm_run_options clstm_run_options_default()
    clstm_status clstm_state_reset(const clstm_model *m, int64_t B, void *h, void *c,
                                   int64_t b)
    ctypedef struct clstm_sgd_config:
        size_t struct_size
        double lr
        double momentum
        double dampening
        double weight_decay
        int nesterov

    ctypedef struct clstm_adam_config:
        size_t struct_size
        double lr
        double beta1
        double beta2
        double eps
        double weight_decay
        int decoupled

    clstm_sgd_config clstm_sgd_config_default()
    clstm_adam_config clstm_adam_config_default()
    clstm_status clstm_sgd_step(clstm_dtype dtype, size_t n, void *params, const void *grads,
                                void *velocity, int first_step, const clstm_sgd_config *cfg)
    clstm_status clstm_adam_step(clstm_dtype dtype, size_t n, void *params, const void *grads,
                                 void *m, void *v, int64_t step, const clstm_adam_config *cfg)
    clstm_status clstm_set_num_threads(int n)
    int clstm_get_num_threads()
    clstm_status clstm_set_min_thread_work(int64_t macs)
    int64_t clstm_get_min_thread_work()
    int clstm_has_blas()
    clstm_status clstm_save(const clstm_model *m, const char *path)
    clstm_status clstm_save_ex(const clstm_model *m, const char *path, const char **why)
    clstm_status clstm_load(const char *path, clstm_model **out)
    clstm_status clstm_load_buffer(const void *data, size_t size, clstm_model **out)
    clstm_status clstm_load_buffer_ex(const void *data, size_t size, clstm_model **out,
                                      const char **why)
    clstm_status clstm_save_buffer_size(const clstm_model *m, size_t *size)
    clstm_status clstm_save_buffer(const clstm_model *m, void *data, size_t capacity,
                                   size_t *written)
    clstm_status clstm_load_ex(const char *path, clstm_model **out, const char **why)
    clstm_status clstm_model_workspace_size(const clstm_model *m, int64_t T, int64_t B,
                                            int train, size_t *bytes)
    clstm_status clstm_model_forward(const clstm_model *m, int64_t T, int64_t B,
                                     const void *x, const int32_t *ids, const void *h0,
                                     const void *c0, void *out, void *hT, void *cT,
                                     const clstm_run_options *opt, void *ws, size_t ws_bytes)
    clstm_status clstm_model_backward(clstm_model *m, int64_t T, int64_t B, const void *dout,
                                      const void *dhT, const void *dcT, void *dx, void *dh0,
                                      void *dc0, void *ws, size_t ws_bytes)
    clstm_status clstm_seq2seq_workspace_size(const clstm_model *m, int64_t Ts, int64_t Tt,
                                              int64_t B, int train, size_t *bytes)
    clstm_status clstm_seq2seq_forward(const clstm_model *m, int64_t Ts, int64_t Tt, int64_t B,
                                       const int32_t *src, const int64_t *src_lens,
                                       const int32_t *tgt_in, const int64_t *tgt_lens,
                                       void *logits, int train, uint64_t dropout_seed, void *ws,
                                       size_t ws_bytes) nogil
    clstm_status clstm_seq2seq_backward(clstm_model *m, int64_t Ts, int64_t Tt, int64_t B,
                                        const void *dlogits, void *ws, size_t ws_bytes) nogil
    clstm_status clstm_seq2seq_decode_workspace_size(const clstm_model *m, int64_t Ts,
                                                     int64_t B, int64_t width, int64_t max_len,
                                                     size_t *bytes)
    clstm_status clstm_seq2seq_beam_search(const clstm_model *m, int64_t Ts, int64_t B,
                                           const int32_t *src, const int64_t *src_lens,
                                           int64_t width, int64_t max_len, double alpha,
                                           int64_t nbest, int32_t *tokens, int64_t *lengths,
                                           double *scores, void *ws, size_t ws_bytes) nogil
    clstm_status clstm_softmax(clstm_dtype dtype, int64_t n, int64_t k, const void *z,
                               double temperature, void *p)
    clstm_status clstm_loss_xent(clstm_dtype dtype, int64_t T, int64_t B, int64_t O,
                                 const void *out, const int32_t *targets,
                                 const int64_t *lengths, int last_only, double *loss,
                                 void *dout)
    clstm_status clstm_loss_xent_smoothed(clstm_dtype dtype, int64_t T, int64_t B, int64_t O,
                                          const void *out, const int32_t *targets,
                                          const int64_t *lengths, int last_only,
                                          double label_smoothing, double *loss, void *dout)
    clstm_status clstm_loss_mse(clstm_dtype dtype, int64_t T, int64_t B, int64_t O,
                                const void *out, const void *targets, const int64_t *lengths,
                                int last_only, double *loss, void *dout)
    enum: CLSTM_CTC_MAX_WIDTH
    enum: CLSTM_SEQ2SEQ_MAX_WIDTH
    ctypedef enum clstm_reduction:
        CLSTM_REDUCE_NONE
        CLSTM_REDUCE_SUM
        CLSTM_REDUCE_MEAN
    clstm_status clstm_ctc_loss(clstm_dtype dtype, int64_t T, int64_t B, int64_t C,
                                const void *logits, const int64_t *input_lengths,
                                const int32_t *targets, int64_t S,
                                const int64_t *target_lengths, int32_t blank,
                                clstm_reduction reduction, int zero_infinity, double *loss,
                                void *dlogits)
    clstm_status clstm_ctc_greedy(clstm_dtype dtype, int64_t T, int64_t B, int64_t C,
                                  const void *logits, const int64_t *input_lengths,
                                  int32_t blank, int32_t *labels, int64_t *label_lengths)
    ctypedef struct clstm_ctc_lm:
        const clstm_model *model
        const int32_t *tokens
        int32_t start
        double weight
        double bonus
    clstm_status clstm_ctc_beam_search_lm(clstm_dtype dtype, int64_t T, int64_t B, int64_t C,
                                          const void *logits, const int64_t *input_lengths,
                                          int32_t blank, int64_t width, int64_t nbest,
                                          const clstm_ctc_lm *lm, int32_t *labels,
                                          int64_t *label_lengths, double *scores)
    clstm_status clstm_set_vocab(clstm_model *m, const char *utf8, size_t bytes)
    clstm_status clstm_get_vocab(const clstm_model *m, const char **utf8, size_t *bytes)
    clstm_status clstm_set_metadata(clstm_model *m, const char *key, const char *value)
    clstm_status clstm_get_metadata(const clstm_model *m, const char *key, const char **value)
    clstm_status clstm_metadata_count(const clstm_model *m, int64_t *n)
    clstm_status clstm_metadata_at(const clstm_model *m, int64_t i, const char **key,
                                   const char **value)
    clstm_status clstm_quantize(const clstm_model *src, clstm_model **out)
    int clstm_is_quantized(const clstm_model *m)
    clstm_status clstm_tensor_int8(const clstm_model *m, int64_t index, const int8_t **q,
                                   const float **scale)
    const char *clstm_int8_kernel()
    clstm_status clstm_int8_kernel_limit(const char *name)
