// Fused CPU kernels for the linear recurrence h_t = a_t * h_{t-1} + b_t and for minGRU / minLSTM
// (gates + recurrence in one pass). Loaded by sequence_models/kernels/cpu.py with
// torch.utils.cpp_extension; Python owns the autograd wiring, these are the raw passes.
//
// Layout: every tensor is contiguous (B, T, F). Work is split into lanes (batch b, a block of
// kBlock features) run in parallel with at::parallel_for (torch's threads); each lane walks time
// sequentially with its running state in a small local array, so every pass reads and writes each
// element once. Backward passes walk time in reverse and recompute the gates from the saved
// pre-activations instead of storing them. Built with -ffast-math -fno-finite-math-only at compile
// time only (never linked with it, so the process's floating-point modes are untouched): NaN and Inf
// pass through as in PyTorch (the training loop's NaN guard relies on it), and exp vectorizes
// (glibc's libmvec, declared below); tests hold every kernel to the pure-PyTorch path.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <c10/util/complex.h>

#include <algorithm>
#include <cmath>

// glibc's math.h declares its vector exp (libmvec, which handles NaN and Inf) only under full
// -ffast-math (__FAST_MATH__), which -fno-finite-math-only switches off; declaring it here keeps
// exp inside the `omp simd` loops vectorized.
#if defined(__x86_64__) && defined(__GLIBC__) && defined(_OPENMP) && !defined(__FAST_MATH__)
extern "C" {
__attribute__((__simd__("notinbranch"))) double exp(double) noexcept;
__attribute__((__simd__("notinbranch"))) float expf(float) noexcept;
}
#endif

namespace {

constexpr int64_t kBlock = 64;

template <typename F>
void for_each_lane(int64_t batch, int64_t width, const F& lane) {
  const int64_t blocks = (width + kBlock - 1) / kBlock;
  at::parallel_for(0, batch * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / blocks;
      const int64_t j0 = (task % blocks) * kBlock;
      lane(b, j0, std::min(width, j0 + kBlock));
    }
  });
}

template <typename T> inline T conj_if_complex(T x) { return x; }
template <typename T> inline c10::complex<T> conj_if_complex(c10::complex<T> x) { return std::conj(x); }

template <typename T> inline T sigmoid(T x) { return T(1) / (T(1) + std::exp(-x)); }
// minGRU's g: x + 1/2 for x >= 0, sigmoid(x) below (positive, continuous at 0)
template <typename T> inline T g(T x) { return x >= T(0) ? x + T(0.5) : sigmoid(x); }
template <typename T> inline T g_derivative(T x) {
  const T s = sigmoid(x);
  return x >= T(0) ? T(1) : s * (T(1) - s);
}

// The state before step t of lane (n, j0..): h[t - 1] (h[t + 1] when reversed) or the initial state
// (zeros when there is none), so inner loops read it without branching. Indexed by the feature j,
// like every row: the lane-local `zeros` (kBlock long, from j0) is shifted by j0 to match.
template <typename S>
inline const S* previous_states(const S* h, const S* initial, const S* zeros, int64_t n, int64_t length,
                                int64_t width, int64_t j0, int64_t t, bool first, bool reverse) {
  if (!first) return h + (n * length + (reverse ? t + 1 : t - 1)) * width;
  return initial ? initial + n * width : zeros - j0;
}

void check_sequence(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU");
  TORCH_CHECK(t.dim() == 3 && t.is_contiguous(), name, " must be a contiguous (batch, time, features) tensor");
}

const void* data_or_null(const c10::optional<torch::Tensor>& t) {
  return t.has_value() && t->defined() ? t->data_ptr() : nullptr;
}

// ---------------------------------------------------------------- generic scan (real or complex)

// h_t = a_t h_{t-1} + b_t (reverse: h_t = a_t h_{t+1} + b_t); initial (B, F) or null.
// a is (B, T, F) or, with constant_a, one diagonal (F) for every step (DSF's feedback, LRU's lambda).
template <typename S>
void scan_forward_kernel(const S* a, const S* b, const S* initial, S* h, int64_t batch, int64_t length,
                         int64_t width, bool reverse, bool constant_a) {
  for_each_lane(batch, width, [&](int64_t n, int64_t j0, int64_t j1) {
    S state[kBlock];
    for (int64_t j = j0; j < j1; ++j) state[j - j0] = initial ? initial[n * width + j] : S(0);
    for (int64_t step = 0; step < length; ++step) {
      const int64_t t = reverse ? length - 1 - step : step;
      const int64_t row = (n * length + t) * width;
      const S* a_t = constant_a ? a : a + row;
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) {
        const S s = a_t[j] * state[j - j0] + b[row + j];
        state[j - j0] = s;
        h[row + j] = s;
      }
    }
  });
}

// Gradients of the scan given dL/dh (grad): g_t = grad_t + conj(a_next) g_next walking against the
// scan's direction; grad_b = g, grad_a_t = g_t conj(h_prev), grad_initial = conj(a_first) g_first.
template <typename S>
void scan_backward_kernel(const S* grad, const S* a, const S* h, const S* initial, S* grad_b, S* grad_a,
                          S* grad_initial, int64_t batch, int64_t length, int64_t width, bool reverse,
                          bool constant_a) {
  for_each_lane(batch, width, [&](int64_t n, int64_t j0, int64_t j1) {
    S carry[kBlock], zeros[kBlock];
    for (int64_t j = j0; j < j1; ++j) carry[j - j0] = zeros[j - j0] = S(0);
    for (int64_t step = length - 1; step >= 0; --step) {
      const int64_t t = reverse ? length - 1 - step : step;
      const int64_t row = (n * length + t) * width;
      const S* a_t = constant_a ? a : a + row;
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) {
        const S total = grad[row + j] + carry[j - j0];
        grad_b[row + j] = total;
        carry[j - j0] = conj_if_complex(a_t[j]) * total;
      }
      if (grad_a) {
        const S* h_previous = previous_states(h, initial, zeros, n, length, width, j0, t, step == 0, reverse);
#pragma omp simd
        for (int64_t j = j0; j < j1; ++j) grad_a[row + j] = grad_b[row + j] * conj_if_complex(h_previous[j]);
      }
    }
    if (grad_initial)
      for (int64_t j = j0; j < j1; ++j) grad_initial[n * width + j] = carry[j - j0];
  });
}

// a: (B, T, F) like b, or (F) for a constant diagonal
bool check_coefficients(const torch::Tensor& a, const torch::Tensor& b) {
  TORCH_CHECK(a.scalar_type() == b.scalar_type() && a.is_contiguous(), "a must be contiguous, of b's dtype");
  const bool constant_a = a.dim() == 1;
  TORCH_CHECK(constant_a ? a.size(0) == b.size(2) : a.sizes() == b.sizes(), "a must be (B, T, F) like b, or (F)");
  return constant_a;
}

torch::Tensor scan_forward(torch::Tensor a, torch::Tensor b, c10::optional<torch::Tensor> initial, bool reverse) {
  check_sequence(b, "b");
  const bool constant_a = check_coefficients(a, b);
  auto h = torch::empty_like(b);
  const int64_t batch = b.size(0), length = b.size(1), width = b.size(2);
  AT_DISPATCH_FLOATING_AND_COMPLEX_TYPES(b.scalar_type(), "scan_forward", [&] {
    scan_forward_kernel<scalar_t>(a.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(),
                                  static_cast<const scalar_t*>(data_or_null(initial)), h.data_ptr<scalar_t>(),
                                  batch, length, width, reverse, constant_a);
  });
  return h;
}

std::vector<torch::Tensor> scan_backward(torch::Tensor grad, torch::Tensor a, torch::Tensor h,
                                         c10::optional<torch::Tensor> initial, bool reverse, bool need_grad_a,
                                         bool need_grad_initial) {
  check_sequence(grad, "grad");
  const bool constant_a = check_coefficients(a, h);
  const int64_t batch = h.size(0), length = h.size(1), width = h.size(2);
  auto grad_b = torch::empty_like(h);
  auto grad_a = need_grad_a ? torch::empty_like(h) : torch::Tensor();
  auto grad_initial = need_grad_initial ? torch::empty({batch, width}, h.options()) : torch::Tensor();
  AT_DISPATCH_FLOATING_AND_COMPLEX_TYPES(h.scalar_type(), "scan_backward", [&] {
    scan_backward_kernel<scalar_t>(grad.data_ptr<scalar_t>(), a.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(),
                                   static_cast<const scalar_t*>(data_or_null(initial)), grad_b.data_ptr<scalar_t>(),
                                   need_grad_a ? grad_a.data_ptr<scalar_t>() : nullptr,
                                   need_grad_initial ? grad_initial.data_ptr<scalar_t>() : nullptr, batch, length,
                                   width, reverse, constant_a);
  });
  return {grad_b, grad_a, grad_initial};
}

// ---------------------------------------------------------------- minGRU
// projected (B, T, 2H) = [k_h | k_z]; z = sigmoid(k_z), h_t = (1 - z) h_{t-1} + z g(k_h)

template <typename S>
void min_gru_forward_kernel(const S* k, const S* initial, S* h, int64_t batch, int64_t length, int64_t width) {
  for_each_lane(batch, width, [&](int64_t n, int64_t j0, int64_t j1) {
    S state[kBlock];
    for (int64_t j = j0; j < j1; ++j) state[j - j0] = initial ? initial[n * width + j] : S(0);
    for (int64_t t = 0; t < length; ++t) {
      const S* hidden = k + (n * length + t) * 2 * width;
      const S* gate = hidden + width;
      S* out = h + (n * length + t) * width;
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) {
        const S z = sigmoid(gate[j]);
        const S s = (S(1) - z) * state[j - j0] + z * g(hidden[j]);
        state[j - j0] = s;
        out[j] = s;
      }
    }
  });
}

template <typename S>
void min_gru_backward_kernel(const S* grad, const S* k, const S* h, const S* initial, S* grad_k, S* grad_initial,
                             int64_t batch, int64_t length, int64_t width, bool exact, const S* feedback) {
  for_each_lane(batch, width, [&](int64_t n, int64_t j0, int64_t j1) {
    S carry[kBlock], zeros[kBlock];
    for (int64_t j = j0; j < j1; ++j) carry[j - j0] = zeros[j - j0] = S(0);
    const S exact_weight = exact ? S(1) : S(0);
    const S* diagonal = feedback ? feedback : zeros - j0;
    for (int64_t t = length - 1; t >= 0; --t) {
      const int64_t row = (n * length + t) * width;
      const S* hidden = k + 2 * row;
      const S* gate = hidden + width;
      S* grad_hidden = grad_k + 2 * row;
      S* grad_gate = grad_hidden + width;
      const S* previous = previous_states(h, initial, zeros, n, length, width, j0, t, t == 0, false);
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) {
        const S total = grad[row + j] + carry[j - j0];
        const S h_previous = previous[j];
        const S z = sigmoid(gate[j]);
        grad_gate[j] = total * (g(hidden[j]) - h_previous) * z * (S(1) - z);
        grad_hidden[j] = total * z * g_derivative(hidden[j]);
        carry[j - j0] = total * (exact_weight * (S(1) - z) + diagonal[j]);
      }
    }
    if (grad_initial)
      for (int64_t j = j0; j < j1; ++j) grad_initial[n * width + j] = carry[j - j0];
  });
}

// ---------------------------------------------------------------- minLSTM
// projected (B, T, 3H) = [k_h | k_f | k_i]; f = sigmoid(k_f), i = sigmoid(k_i);
// normalize: f' = f / (f + i), i' = 1 - f'; else f' = f, i' = i.  h_t = f' h_{t-1} + i' g(k_h)

template <typename S>
inline void min_lstm_gates(S forget_pre, S input_pre, bool normalize, S& f, S& i, S& f_out, S& i_out) {
  f = sigmoid(forget_pre);
  i = sigmoid(input_pre);
  const S normalized = f / (f + i);
  f_out = normalize ? normalized : f;
  i_out = normalize ? S(1) - normalized : i;
}

template <typename S, bool normalize>
void min_lstm_forward_kernel(const S* k, const S* initial, S* h, int64_t batch, int64_t length, int64_t width) {
  for_each_lane(batch, width, [&](int64_t n, int64_t j0, int64_t j1) {
    S state[kBlock];
    for (int64_t j = j0; j < j1; ++j) state[j - j0] = initial ? initial[n * width + j] : S(0);
    for (int64_t t = 0; t < length; ++t) {
      const S* hidden = k + (n * length + t) * 3 * width;
      S* out = h + (n * length + t) * width;
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) {
        S f, i, f_out, i_out;
        min_lstm_gates(hidden[width + j], hidden[2 * width + j], normalize, f, i, f_out, i_out);
        const S s = f_out * state[j - j0] + i_out * g(hidden[j]);
        state[j - j0] = s;
        out[j] = s;
      }
    }
  });
}

template <typename S, bool normalize>  // normalize is a template argument so that the loops vectorize
void min_lstm_backward_kernel(const S* grad, const S* k, const S* h, const S* initial, S* grad_k, S* grad_initial,
                              int64_t batch, int64_t length, int64_t width, bool exact, const S* feedback) {
  for_each_lane(batch, width, [&](int64_t n, int64_t j0, int64_t j1) {
    S carry[kBlock], zeros[kBlock];
    for (int64_t j = j0; j < j1; ++j) carry[j - j0] = zeros[j - j0] = S(0);
    const S exact_weight = exact ? S(1) : S(0);
    const S* diagonal = feedback ? feedback : zeros - j0;
    for (int64_t t = length - 1; t >= 0; --t) {
      const int64_t row = (n * length + t) * width;
      const S* hidden = k + 3 * row;
      S* grad_hidden = grad_k + 3 * row;
      const S* previous = previous_states(h, initial, zeros, n, length, width, j0, t, t == 0, false);
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) {
        const S total = grad[row + j] + carry[j - j0];
        const S h_previous = previous[j];
        S f, i, f_out, i_out;
        min_lstm_gates(hidden[width + j], hidden[2 * width + j], normalize, f, i, f_out, i_out);
        const S candidate = g(hidden[j]);
        grad_hidden[j] = total * i_out * g_derivative(hidden[j]);
        // normalize: i' = 1 - f', so dL/df' = total (h_prev - candidate), and f' = f / (f + i)
        // gives df'/df = i / (f + i)^2, df'/di = -f / (f + i)^2; otherwise f' = f and i' = i
        const S grad_f_out = normalize ? total * (h_previous - candidate) : total * h_previous;
        const S inverse_sum_squared = S(1) / ((f + i) * (f + i));
        const S f_scale = normalize ? i * inverse_sum_squared : S(1);
        const S i_scale = normalize ? -grad_f_out * f * inverse_sum_squared : total * candidate;
        grad_hidden[width + j] = grad_f_out * f_scale * f * (S(1) - f);
        grad_hidden[2 * width + j] = i_scale * i * (S(1) - i);
        carry[j - j0] = total * (exact_weight * f_out + diagonal[j]);
      }
    }
    if (grad_initial)
      for (int64_t j = j0; j < j1; ++j) grad_initial[n * width + j] = carry[j - j0];
  });
}

// ---------------------------------------------------------------- bindings shared by both layers

int64_t gates_per_unit(const std::string& cell) {
  TORCH_CHECK(cell == "mingru" || cell == "minlstm", "unknown cell ", cell);
  return cell == "mingru" ? 2 : 3;
}

torch::Tensor min_rnn_forward(const std::string& cell, torch::Tensor projected, c10::optional<torch::Tensor> initial,
                              bool normalize) {
  check_sequence(projected, "projected");
  const int64_t per_unit = gates_per_unit(cell);
  const int64_t batch = projected.size(0), length = projected.size(1), width = projected.size(2) / per_unit;
  auto h = torch::empty({batch, length, width}, projected.options());
  AT_DISPATCH_FLOATING_TYPES(projected.scalar_type(), "min_rnn_forward", [&] {
    const auto* start = static_cast<const scalar_t*>(data_or_null(initial));
    if (per_unit == 2)
      min_gru_forward_kernel<scalar_t>(projected.data_ptr<scalar_t>(), start, h.data_ptr<scalar_t>(), batch, length,
                                       width);
    else if (normalize)
      min_lstm_forward_kernel<scalar_t, true>(projected.data_ptr<scalar_t>(), start, h.data_ptr<scalar_t>(), batch,
                                              length, width);
    else
      min_lstm_forward_kernel<scalar_t, false>(projected.data_ptr<scalar_t>(), start, h.data_ptr<scalar_t>(), batch,
                                               length, width);
  });
  return h;
}

std::vector<torch::Tensor> min_rnn_backward(const std::string& cell, torch::Tensor grad, torch::Tensor projected,
                                            torch::Tensor h, c10::optional<torch::Tensor> initial, bool normalize,
                                            bool need_grad_initial, c10::optional<torch::Tensor> feedback,
                                            bool exact) {
  check_sequence(grad, "grad");
  TORCH_CHECK(!(exact && data_or_null(feedback)), "exact gradients take no feedback diagonal");
  const int64_t per_unit = gates_per_unit(cell);
  const int64_t batch = h.size(0), length = h.size(1), width = h.size(2);
  auto grad_projected = torch::empty_like(projected);
  auto grad_initial = need_grad_initial ? torch::empty({batch, width}, h.options()) : torch::Tensor();
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "min_rnn_backward", [&] {
    const auto* start = static_cast<const scalar_t*>(data_or_null(initial));
    auto* grad_start = need_grad_initial ? grad_initial.data_ptr<scalar_t>() : nullptr;
    const auto* diagonal = static_cast<const scalar_t*>(data_or_null(feedback));
    if (per_unit == 2)
      min_gru_backward_kernel<scalar_t>(grad.data_ptr<scalar_t>(), projected.data_ptr<scalar_t>(),
                                        h.data_ptr<scalar_t>(), start, grad_projected.data_ptr<scalar_t>(),
                                        grad_start, batch, length, width, exact, diagonal);
    else if (normalize)
      min_lstm_backward_kernel<scalar_t, true>(grad.data_ptr<scalar_t>(), projected.data_ptr<scalar_t>(),
                                               h.data_ptr<scalar_t>(), start, grad_projected.data_ptr<scalar_t>(),
                                               grad_start, batch, length, width, exact, diagonal);
    else
      min_lstm_backward_kernel<scalar_t, false>(grad.data_ptr<scalar_t>(), projected.data_ptr<scalar_t>(),
                                                h.data_ptr<scalar_t>(), start, grad_projected.data_ptr<scalar_t>(),
                                                grad_start, batch, length, width, exact, diagonal);
  });
  return {grad_projected, grad_initial};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("scan_forward", &scan_forward, "h_t = a_t h_{t-1} + b_t over (B, T, F), real or complex");
  m.def("scan_backward", &scan_backward, "gradients of scan_forward: (grad_b, grad_a, grad_initial)");
  m.def("min_rnn_forward", &min_rnn_forward, "minGRU / minLSTM gates + recurrence in one pass");
  m.def("min_rnn_backward", &min_rnn_backward,
        "gradient of min_rnn_forward w.r.t. projected and initial: exact, or DSF's with a feedback diagonal "
        "(none: truncated)");
}
