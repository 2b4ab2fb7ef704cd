// One Adam-family step over a whole parameter group on the CPU: the C++ twin
// of the Triton kernel in adamw_lab/triton_kernels.py.  Same tables, same
// formula, one pass over memory: per element one load and one store of each
// array, everything else in registers.
//
// What it adds over a plain loop is software prefetch.  With only a few cores,
// the hardware prefetchers do not keep enough cache-line requests in flight
// for seven streams (read w, g, m, v; write w, m, v), so each core asks for
// the lines it will need `prefetch_bytes` ahead (0: no prefetch).
//
// adamw_lab/cpp_kernel.py compiles this file at first use (g++ -O3
// -march=native -fopenmp) and calls it through ctypes: no PyTorch header.
// The tables' layout comes from a header that cpp_kernel.layout_header()
// generates from adamw_lab.functional (-include): `struct Row` (addresses of
// w, g, m, v and v_max = v without amsgrad, numel, elements per model), the
// positions in the hyperparameter table (BETA1 ... BC2_SQRT, N_HYPER) and the
// decay codes (DECOUPLED, L2, PROX).
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace {

constexpr int64_t LINE_BYTES = 64;

// Scalars of one segment, formed in float64 and rounded once, as torch.optim does.
template <typename T>
struct Coef {
  T sign, l2, shrink, one_minus_beta1, beta2, one_minus_beta2, inv_bc2_sqrt, eps, step_size, prox;
};

// Elements [lo, hi) of one tensor, all of one model (one lr, one λ).
template <typename T, Decay DECAY, bool AMSGRAD>
void update(const Row& r, int64_t lo, int64_t hi, const Coef<T>& c, int64_t ahead) {
  T* __restrict p = reinterpret_cast<T*>(r.p);
  const T* __restrict g = reinterpret_cast<const T*>(r.g);
  T* __restrict m = reinterpret_cast<T*>(r.m);
  T* __restrict v = reinterpret_cast<T*>(r.v);
  T* __restrict vmax = reinterpret_cast<T*>(r.vmax);
  constexpr int64_t line = LINE_BYTES / sizeof(T);
  for (int64_t start = lo; start < hi; start += line) {
    if (ahead && start + ahead < r.numel) {   // ask for a line of each array before it is needed
      __builtin_prefetch(p + start + ahead, 1);
      __builtin_prefetch(g + start + ahead, 0);
      __builtin_prefetch(m + start + ahead, 1);
      __builtin_prefetch(v + start + ahead, 1);
      if (AMSGRAD) __builtin_prefetch(vmax + start + ahead, 1);
    }
    const int64_t end = std::min(start + line, hi);
#pragma omp simd
    for (int64_t i = start; i < end; ++i) {
      T w = p[i], gi = c.sign * g[i];                    // maximize: ascend
      if (DECAY == L2) gi += c.l2 * w;                   // λw joins the gradient
      if (DECAY == DECOUPLED) w *= c.shrink;             // w ← (1 − ηλ)w
      const T mi = m[i] + c.one_minus_beta1 * (gi - m[i]);           // m ← β₁m + (1−β₁)g
      const T vi = c.beta2 * v[i] + c.one_minus_beta2 * gi * gi;     // v ← β₂v + (1−β₂)g²
      m[i] = mi;
      v[i] = vi;
      T vhat = vi;
      if (AMSGRAD) {                                      // never let the denominator shrink
        vhat = std::max(vmax[i], vi);
        vmax[i] = vhat;
      }
      // w − η·m̂/(√v̂+ε); multiplying by 1/√(1−β₂ᵗ) saves a division per element
      w -= c.step_size * (mi / (std::sqrt(vhat) * c.inv_bc2_sqrt + c.eps));
      if (DECAY == PROX) w /= c.prox;                    // proximal map of (λ/2)‖w‖²
      p[i] = w;
    }
  }
}

template <typename T>
void segment(int decay, bool amsgrad, const Row& r, int64_t lo, int64_t hi, const Coef<T>& c,
             int64_t ahead) {
  switch (decay * 2 + amsgrad) {   // one specialised loop per (decay, amsgrad)
    case DECOUPLED * 2: return update<T, DECOUPLED, false>(r, lo, hi, c, ahead);
    case DECOUPLED * 2 + 1: return update<T, DECOUPLED, true>(r, lo, hi, c, ahead);
    case L2 * 2: return update<T, L2, false>(r, lo, hi, c, ahead);
    case L2 * 2 + 1: return update<T, L2, true>(r, lo, hi, c, ahead);
    case PROX * 2: return update<T, PROX, false>(r, lo, hi, c, ahead);
    case PROX * 2 + 1: return update<T, PROX, true>(r, lo, hi, c, ahead);
  }
}

// hyper = [β₁, β₂, ε, 1−β₁ᵗ, √(1−β₂ᵗ), lr_0 … lr_{M−1}, λ_0 … λ_{M−1}], as for the Triton kernel.
// blocks = n_blocks pairs (tensor index, first element): the work, split between threads.
template <typename T>
void step(const Row* rows, const int64_t* blocks, int64_t n_blocks, int64_t block,
          const double* hyper, int64_t n_models, int decay, int amsgrad, int maximize,
          int64_t prefetch_bytes, int threads) {
  const int64_t ahead = prefetch_bytes / int64_t(sizeof(T));   // elements
  const double beta1 = hyper[BETA1], beta2 = hyper[BETA2], eps = hyper[EPS], bc1 = hyper[BC1],
               bc2_sqrt = hyper[BC2_SQRT];
  // Static schedule: each thread updates one contiguous run of blocks.
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t b = 0; b < n_blocks; ++b) {
    const Row& r = rows[blocks[2 * b]];
    const int64_t first = blocks[2 * b + 1], last = std::min(first + block, r.numel);
    for (int64_t lo = first; lo < last;) {   // a batched sweep: cut the block at model boundaries
      const int64_t model = lo / r.per_model;
      const int64_t hi = std::min(last, (model + 1) * r.per_model);
      const double lr = hyper[N_HYPER + model], wd = hyper[N_HYPER + n_models + model];
      const Coef<T> c{T(maximize ? -1 : 1), T(wd), T(1 - lr * wd), T(1 - beta1), T(beta2),
                      T(1 - beta2), T(1 / bc2_sqrt), T(eps), T(lr / bc1), T(1 + lr * wd)};
      segment<T>(decay, amsgrad, r, lo, hi, c, ahead);
      lo = hi;
    }
  }
}

}  // namespace

extern "C" {
#define ADAM_STEP(T)                                                                              \
  void adam_step_##T(const Row* rows, const int64_t* blocks, int64_t n_blocks, int64_t block,    \
                     const double* hyper, int64_t n_models, int decay, int amsgrad, int maximize, \
                     int64_t prefetch_bytes, int threads) {                                       \
    step<T>(rows, blocks, n_blocks, block, hyper, n_models, decay, amsgrad, maximize,             \
            prefetch_bytes, threads);                                                              \
  }
ADAM_STEP(float)
ADAM_STEP(double)
}
