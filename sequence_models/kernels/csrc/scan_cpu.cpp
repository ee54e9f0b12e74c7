// Fused CPU kernels for the linear recurrence h_t = a_t * h_{t-1} + b_t, for minGRU / minLSTM
// (gates + recurrence in one pass), for Mamba's selective scan (discretization + recurrence +
// readout in one pass) and for the GRU / Elman RNN time loop (exact BPTT). Loaded by
// sequence_models/kernels/cpu.py with torch.utils.cpp_extension; Python owns the autograd wiring,
// these are the raw passes.
//
// Layout: every tensor is contiguous (B, T, F). Work is split into lanes (batch b, a block of
// kBlock features) run in parallel with at::parallel_for (torch's threads); each lane walks time
// sequentially with its running state in a small local array, so every pass reads and writes each
// element once. Backward passes walk time in reverse and recompute the gates from the saved
// pre-activations instead of storing them. (The selective scan's lanes are (batch, channel) pairs
// with an (N) state; the GRU / RNN loop cannot split time or features, since each step's matmul mixes
// every feature of the last state, so it runs one step after another over the whole batch.) Built
// with -ffast-math -fno-finite-math-only at compile time only (never linked with it, so the
// process's floating-point modes are untouched): NaN and Inf pass through as in PyTorch (the training
// loop's NaN guard relies on it), and exp vectorizes (glibc's libmvec, declared below); tests hold
// every kernel to the pure-PyTorch path.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <c10/util/complex.h>

#include <algorithm>
#include <cmath>
#include <vector>

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
// tanh through the vectorized exp (libmvec's vector tanh needs glibc 2.35): exact at +-inf, within a few
// ulps of 1 everywhere (relative precision near 0 is that of 1 - tiny, which the sums it enters share)
template <typename T> inline T tanh_by_exp(T x) { return T(2) * sigmoid(T(2) * x) - T(1); }
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

// ---------------------------------------------------------------- Mamba's selective scan
// x, delta (B, T, E); A (E, N); Bm, C (B, T, N); initial (B, E, N) or null.
// h_t = exp(delta_t A) h_{t-1} + delta_t x_t Bm_t (per channel e, states n), y_t = C_t . h_t.
// The (B, T, E, N) states are never stored: forward keeps one (N) state per channel, backward
// recomputes one channel's T x N states at a time (a lane's scratch) and walks them in reverse.

template <typename S>
void selective_scan_forward_kernel(const S* x, const S* delta, const S* A, const S* Bm, const S* C,
                                   const S* initial, S* y, S* last, int64_t batch, int64_t length, int64_t channels,
                                   int64_t states) {
  at::parallel_for(0, batch * channels, 1, [&](int64_t begin, int64_t end) {
    std::vector<S> state(states);
    for (int64_t lane = begin; lane < end; ++lane) {
      const int64_t b = lane / channels, e = lane % channels;
      const S* a = A + e * states;
      for (int64_t n = 0; n < states; ++n) state[n] = initial ? initial[lane * states + n] : S(0);
      S* s = state.data();
      for (int64_t t = 0; t < length; ++t) {
        const int64_t row = (b * length + t);
        const S d = delta[row * channels + e], drive = d * x[row * channels + e];
        const S* b_t = Bm + row * states;
        const S* c_t = C + row * states;
        S out = S(0);
#pragma omp simd reduction(+ : out)
        for (int64_t n = 0; n < states; ++n) {
          const S h = std::exp(d * a[n]) * s[n] + drive * b_t[n];
          s[n] = h;
          out += c_t[n] * h;
        }
        y[row * channels + e] = out;
      }
      for (int64_t n = 0; n < states; ++n) last[lane * states + n] = s[n];
    }
  });
}

// Gradients given dL/dy and dL/dh_T (grad_last, or null). grad_B / grad_C sum over channels and grad_A over
// the batch, so each task (batch b, channel group g) adds into its own partial rows: partial_BC
// (G, B, T, N) twice and partial_A (B, E, N), summed by the caller.
template <typename S>
void selective_scan_backward_kernel(const S* grad_y, const S* grad_last, const S* x, const S* delta, const S* A,
                                    const S* Bm, const S* C, const S* initial, S* grad_x, S* grad_delta,
                                    S* partial_A, S* partial_B, S* partial_C, S* grad_initial, int64_t batch,
                                    int64_t length, int64_t channels, int64_t states, int64_t groups) {
  at::parallel_for(0, batch * groups, 1, [&](int64_t begin, int64_t end) {
    std::vector<S> history(length * states), carry(states), zeros(states, S(0));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / groups, group = task % groups;
      const int64_t e0 = group * channels / groups, e1 = (group + 1) * channels / groups;
      S* gB = partial_B + (group * batch + b) * length * states;
      S* gC = partial_C + (group * batch + b) * length * states;
      for (int64_t e = e0; e < e1; ++e) {
        const int64_t lane = b * channels + e;
        const S* a = A + e * states;
        S* gA = partial_A + lane * states;
        const S* start = initial ? initial + lane * states : zeros.data();
        const S* previous = start;
        for (int64_t t = 0; t < length; ++t) {  // recompute this channel's states
          const int64_t row = b * length + t;
          const S d = delta[row * channels + e], drive = d * x[row * channels + e];
          const S* b_t = Bm + row * states;
          S* h = history.data() + t * states;
#pragma omp simd
          for (int64_t n = 0; n < states; ++n) h[n] = std::exp(d * a[n]) * previous[n] + drive * b_t[n];
          previous = h;
        }
        S* g = carry.data();
        for (int64_t n = 0; n < states; ++n) g[n] = grad_last ? grad_last[lane * states + n] : S(0);
        for (int64_t t = length - 1; t >= 0; --t) {
          const int64_t row = b * length + t;
          const S d = delta[row * channels + e], input = x[row * channels + e], gy = grad_y[row * channels + e];
          const S* b_t = Bm + row * states;
          const S* c_t = C + row * states;
          const S* h = history.data() + t * states;
          const S* h_previous = t > 0 ? h - states : start;
          S* gB_t = gB + t * states;
          S* gC_t = gC + t * states;
          S sum_delta = S(0), sum_x = S(0);
#pragma omp simd reduction(+ : sum_delta, sum_x)
          for (int64_t n = 0; n < states; ++n) {
            const S total = g[n] + gy * c_t[n];
            const S decay = std::exp(d * a[n]);
            const S decayed = decay * h_previous[n];
            gC_t[n] += gy * h[n];
            gB_t[n] += total * d * input;
            gA[n] += total * d * decayed;
            sum_delta += total * (a[n] * decayed + input * b_t[n]);
            sum_x += total * b_t[n];
            g[n] = total * decay;
          }
          grad_delta[row * channels + e] = sum_delta;
          grad_x[row * channels + e] = sum_x * d;
        }
        if (grad_initial)
          for (int64_t n = 0; n < states; ++n) grad_initial[lane * states + n] = g[n];
      }
    }
  });
}

void check_selective(const torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& A,
                     const torch::Tensor& Bm, const torch::Tensor& C) {
  check_sequence(x, "x");
  check_sequence(Bm, "B");
  TORCH_CHECK(delta.sizes() == x.sizes() && delta.is_contiguous(), "delta must be contiguous, shaped like x");
  TORCH_CHECK(C.sizes() == Bm.sizes() && C.is_contiguous(), "C must be contiguous, shaped like B");
  TORCH_CHECK(A.dim() == 2 && A.is_contiguous() && A.size(0) == x.size(2) && A.size(1) == Bm.size(2),
              "A must be a contiguous (E, N)");
  TORCH_CHECK(Bm.size(0) == x.size(0) && Bm.size(1) == x.size(1), "B and C must be (batch, time, N) like x");
  for (const auto* t : {&delta, &A, &Bm, &C})
    TORCH_CHECK(t->scalar_type() == x.scalar_type(), "every input must have x's dtype");
}

std::vector<torch::Tensor> selective_scan_forward(torch::Tensor x, torch::Tensor delta, torch::Tensor A,
                                                  torch::Tensor Bm, torch::Tensor C,
                                                  c10::optional<torch::Tensor> initial) {
  check_selective(x, delta, A, Bm, C);
  const int64_t batch = x.size(0), length = x.size(1), channels = x.size(2), states = A.size(1);
  auto y = torch::empty_like(x);
  auto last = torch::empty({batch, channels, states}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "selective_scan_forward", [&] {
    selective_scan_forward_kernel<scalar_t>(
        x.data_ptr<scalar_t>(), delta.data_ptr<scalar_t>(), A.data_ptr<scalar_t>(), Bm.data_ptr<scalar_t>(),
        C.data_ptr<scalar_t>(), static_cast<const scalar_t*>(data_or_null(initial)), y.data_ptr<scalar_t>(),
        last.data_ptr<scalar_t>(), batch, length, channels, states);
  });
  return {y, last};
}

// returns grad_x, grad_delta, grad_A, grad_B, grad_C, grad_initial (undefined unless need_grad_initial)
std::vector<torch::Tensor> selective_scan_backward(torch::Tensor grad_y, c10::optional<torch::Tensor> grad_last,
                                                   torch::Tensor x, torch::Tensor delta, torch::Tensor A,
                                                   torch::Tensor Bm, torch::Tensor C,
                                                   c10::optional<torch::Tensor> initial, bool need_grad_initial) {
  check_selective(x, delta, A, Bm, C);
  check_sequence(grad_y, "grad_y");
  const int64_t batch = x.size(0), length = x.size(1), channels = x.size(2), states = A.size(1);
  // enough (batch, channel group) tasks for every thread; one group when the batch alone is enough
  const int64_t groups = std::min(channels, std::max<int64_t>(1, (at::get_num_threads() + batch - 1) / batch));
  auto grad_x = torch::empty_like(x), grad_delta = torch::empty_like(x);
  auto partial_A = torch::zeros({batch, channels, states}, x.options());
  auto partial_B = torch::zeros({groups, batch, length, states}, x.options());
  auto partial_C = torch::zeros({groups, batch, length, states}, x.options());
  auto grad_initial = need_grad_initial ? torch::empty({batch, channels, states}, x.options()) : torch::Tensor();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "selective_scan_backward", [&] {
    selective_scan_backward_kernel<scalar_t>(
        grad_y.data_ptr<scalar_t>(), static_cast<const scalar_t*>(data_or_null(grad_last)), x.data_ptr<scalar_t>(),
        delta.data_ptr<scalar_t>(), A.data_ptr<scalar_t>(), Bm.data_ptr<scalar_t>(), C.data_ptr<scalar_t>(),
        static_cast<const scalar_t*>(data_or_null(initial)), grad_x.data_ptr<scalar_t>(),
        grad_delta.data_ptr<scalar_t>(), partial_A.data_ptr<scalar_t>(), partial_B.data_ptr<scalar_t>(),
        partial_C.data_ptr<scalar_t>(), need_grad_initial ? grad_initial.data_ptr<scalar_t>() : nullptr, batch,
        length, channels, states, groups);
  });
  return {grad_x, grad_delta, partial_A.sum(0), partial_B.sum(0), partial_C.sum(0), grad_initial};
}

// ---------------------------------------------------------------- GRU and Elman RNN, exact BPTT
// gi (B, T, G H) = x W_ih^T + b_ih (computed by the caller, one matmul over all steps); w_hh (G H, H);
// b_hh (G H) or none; initial (B, H) or none. gh = h_{t-1} W_hh^T + b_hh is one small matmul per step.
//   GRU (G = 3, torch's gate order r, z, n): r = sigmoid(gi_r + gh_r), z = sigmoid(gi_z + gh_z),
//       n = tanh(gi_n + r gh_n), h_t = (1 - z) n + z h_{t-1}      saved per step: [r, z, n, gh_n] (4 H)
//   RNN (G = 1): h_t = tanh or relu(gi + gh)                         saved: nothing (h_t suffices)
// The time loop is sequential (each step needs the last); the matmuls use torch's BLAS threads.

enum class Cell { gru, rnn_tanh, rnn_relu };

Cell classic_cell(const std::string& name) {
  if (name == "gru") return Cell::gru;
  if (name == "rnn_tanh") return Cell::rnn_tanh;
  TORCH_CHECK(name == "rnn_relu", "unknown cell ", name, " (gru, rnn_tanh, rnn_relu)");
  return Cell::rnn_relu;
}

void check_classic(const torch::Tensor& gi, const torch::Tensor& w_hh, int64_t gates) {
  check_sequence(gi, "gi");
  TORCH_CHECK(w_hh.dim() == 2 && w_hh.size(0) == gates * w_hh.size(1) && gi.size(2) == w_hh.size(0),
              "w_hh must be (G H, H) with gi (B, T, G H)");
  TORCH_CHECK(w_hh.scalar_type() == gi.scalar_type(), "w_hh must have gi's dtype");
}

template <typename S>
void classic_step_forward(Cell cell, const S* gi, const S* gh, const S* h_previous, S* h, S* saved,
                          int64_t batch, int64_t hidden, int64_t gi_stride, int64_t h_stride, int64_t saved_stride,
                          int64_t previous_stride) {
  const int64_t gates = cell == Cell::gru ? 3 : 1;
  for (int64_t b = 0; b < batch; ++b) {
    const S* gi_b = gi + b * gi_stride;
    const S* gh_b = gh + b * gates * hidden;
    const S* previous = h_previous + b * previous_stride;
    S* out = h + b * h_stride;
    if (cell == Cell::gru) {
      S* keep = saved + b * saved_stride;
#pragma omp simd
      for (int64_t j = 0; j < hidden; ++j) {
        const S r = sigmoid(gi_b[j] + gh_b[j]);
        const S z = sigmoid(gi_b[hidden + j] + gh_b[hidden + j]);
        const S n = tanh_by_exp(gi_b[2 * hidden + j] + r * gh_b[2 * hidden + j]);
        out[j] = (S(1) - z) * n + z * previous[j];
        keep[j] = r, keep[hidden + j] = z, keep[2 * hidden + j] = n, keep[3 * hidden + j] = gh_b[2 * hidden + j];
      }
    } else if (cell == Cell::rnn_tanh) {
#pragma omp simd
      for (int64_t j = 0; j < hidden; ++j) out[j] = tanh_by_exp(gi_b[j] + gh_b[j]);
    } else {
#pragma omp simd
      for (int64_t j = 0; j < hidden; ++j) out[j] = std::max(S(0), gi_b[j] + gh_b[j]);
    }
  }
}

// returns h (B, T, H) and the saved gates (GRU: (B, T, 4 H); RNN: undefined)
std::vector<torch::Tensor> classic_rnn_forward(const std::string& name, torch::Tensor gi, torch::Tensor w_hh,
                                               c10::optional<torch::Tensor> b_hh,
                                               c10::optional<torch::Tensor> initial) {
  const Cell cell = classic_cell(name);
  const int64_t gates = cell == Cell::gru ? 3 : 1;
  check_classic(gi, w_hh, gates);
  const int64_t batch = gi.size(0), length = gi.size(1), hidden = w_hh.size(1);
  auto h = torch::empty({batch, length, hidden}, gi.options());
  auto saved = cell == Cell::gru ? torch::empty({batch, length, 4 * hidden}, gi.options()) : torch::Tensor();
  auto start = initial.has_value() && initial->defined() ? initial->contiguous()
                                                         : torch::zeros({batch, hidden}, gi.options());
  auto gh = torch::empty({batch, gates * hidden}, gi.options());
  const auto weight = w_hh.t();
  const bool has_bias = b_hh.has_value() && b_hh->defined();
  AT_DISPATCH_FLOATING_TYPES(gi.scalar_type(), "classic_rnn_forward", [&] {
    for (int64_t t = 0; t < length; ++t) {
      const auto previous = t == 0 ? start : h.select(1, t - 1);
      if (has_bias) at::addmm_out(gh, *b_hh, previous, weight);
      else at::mm_out(gh, previous, weight);
      classic_step_forward<scalar_t>(
          cell, gi.data_ptr<scalar_t>() + t * gates * hidden, gh.data_ptr<scalar_t>(),
          previous.data_ptr<scalar_t>(), h.data_ptr<scalar_t>() + t * hidden,
          saved.defined() ? saved.data_ptr<scalar_t>() + t * 4 * hidden : nullptr, batch, hidden,
          length * gates * hidden, length * hidden, length * 4 * hidden, t == 0 ? hidden : length * hidden);
    }
  });
  return {h, saved};
}

// One step of BPTT for every batch row: total = dL/dh_t (the step's own gradient plus the carry), into
// dL/dgi_t, dL/dgh_t and the part of dL/dh_{t-1} that does not go through W_hh (GRU: total z).
template <typename S>
void classic_step_backward(Cell cell, const S* grad_out, const S* carry, const S* h, const S* h_previous,
                           const S* saved, S* grad_gi, S* grad_gh, S* direct, int64_t batch, int64_t hidden,
                           int64_t row_stride, int64_t previous_stride, int64_t gates) {
  for (int64_t b = 0; b < batch; ++b) {
    const S* g_out = grad_out + b * row_stride * hidden;
    const S* c = carry + b * hidden;
    const S* out = h + b * row_stride * hidden;
    const S* prev = h_previous + b * previous_stride;
    S* d_gi = grad_gi + b * row_stride * gates * hidden;
    S* d_gh = grad_gh + b * row_stride * gates * hidden;
    S* d_direct = direct + b * hidden;
    if (cell == Cell::gru) {
      const S* keep = saved + b * row_stride * 4 * hidden;
#pragma omp simd
      for (int64_t j = 0; j < hidden; ++j) {
        const S dh = g_out[j] + c[j];
        const S r = keep[j], z = keep[hidden + j], n = keep[2 * hidden + j], gh_n = keep[3 * hidden + j];
        const S dn = dh * (S(1) - z) * (S(1) - n * n);
        const S dr = dn * gh_n * r * (S(1) - r);
        const S dz = dh * (prev[j] - n) * z * (S(1) - z);
        d_gi[j] = dr, d_gi[hidden + j] = dz, d_gi[2 * hidden + j] = dn;
        d_gh[j] = dr, d_gh[hidden + j] = dz, d_gh[2 * hidden + j] = dn * r;
        d_direct[j] = dh * z;
      }
    } else if (cell == Cell::rnn_tanh) {
#pragma omp simd
      for (int64_t j = 0; j < hidden; ++j) {
        d_gi[j] = (g_out[j] + c[j]) * (S(1) - out[j] * out[j]);
        d_direct[j] = S(0);
      }
    } else {
#pragma omp simd
      for (int64_t j = 0; j < hidden; ++j) {
        d_gi[j] = out[j] > S(0) ? g_out[j] + c[j] : S(0);
        d_direct[j] = S(0);
      }
    }
  }
}

// dL/dgi and dL/dgh (B, T, G H) (for the RNN the same tensor) and dL/dh_0, given dL/dh (B, T, H).
// The caller forms dL/dW_hh = dgh^T h_previous and dL/db_hh = sum dgh (two matmul-sized ops).
std::vector<torch::Tensor> classic_rnn_backward(const std::string& name, torch::Tensor grad_h, torch::Tensor w_hh,
                                                torch::Tensor h, c10::optional<torch::Tensor> saved,
                                                c10::optional<torch::Tensor> initial) {
  const Cell cell = classic_cell(name);
  const int64_t gates = cell == Cell::gru ? 3 : 1;
  check_sequence(grad_h, "grad_h");
  check_sequence(h, "h");
  TORCH_CHECK(cell != Cell::gru || data_or_null(saved), "the GRU's backward needs its saved gates");
  const int64_t batch = h.size(0), length = h.size(1), hidden = h.size(2);
  auto grad_gi = torch::empty({batch, length, gates * hidden}, h.options());
  auto grad_gh = cell == Cell::gru ? torch::empty_like(grad_gi) : grad_gi;
  auto carry = torch::zeros({batch, hidden}, h.options());
  auto direct = torch::empty({batch, hidden}, h.options());
  auto start = initial.has_value() && initial->defined() ? initial->contiguous()
                                                         : torch::zeros({batch, hidden}, h.options());
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "classic_rnn_backward", [&] {
    const auto* kept = static_cast<const scalar_t*>(data_or_null(saved));
    for (int64_t t = length - 1; t >= 0; --t) {
      classic_step_backward<scalar_t>(
          cell, grad_h.data_ptr<scalar_t>() + t * hidden, carry.data_ptr<scalar_t>(),
          h.data_ptr<scalar_t>() + t * hidden,
          t == 0 ? start.data_ptr<scalar_t>() : h.data_ptr<scalar_t>() + (t - 1) * hidden,
          kept ? kept + t * 4 * hidden : nullptr, grad_gi.data_ptr<scalar_t>() + t * gates * hidden,
          grad_gh.data_ptr<scalar_t>() + t * gates * hidden, direct.data_ptr<scalar_t>(), batch, hidden, length,
          t == 0 ? hidden : length * hidden, gates);
      at::addmm_out(carry, direct, grad_gh.select(1, t), w_hh);
    }
  });
  return {grad_gi, grad_gh, carry};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("scan_forward", &scan_forward, "h_t = a_t h_{t-1} + b_t over (B, T, F), real or complex");
  m.def("scan_backward", &scan_backward, "gradients of scan_forward: (grad_b, grad_a, grad_initial)");
  m.def("min_rnn_forward", &min_rnn_forward, "minGRU / minLSTM gates + recurrence in one pass");
  m.def("min_rnn_backward", &min_rnn_backward,
        "gradient of min_rnn_forward w.r.t. projected and initial: exact, or DSF's with a feedback diagonal "
        "(none: truncated)");
  m.def("selective_scan_forward", &selective_scan_forward,
        "Mamba's selective scan: (y, h_T) without materialising the (B, T, E, N) states");
  m.def("selective_scan_backward", &selective_scan_backward,
        "gradients of selective_scan_forward: (x, delta, A, B, C, initial), states recomputed per channel");
  m.def("classic_rnn_forward", &classic_rnn_forward, "GRU / Elman RNN over a sequence: (h, saved gates)");
  m.def("classic_rnn_backward", &classic_rnn_backward,
        "exact BPTT of classic_rnn_forward: (dL/dgi, dL/dgh, dL/dh_0)");
}
