// heobs-dec: MultiTLoss layer, CUDA code. The same steps as the CPU code:
// distances and gradients through cuBLAS, one thread per sample for the
// normalisation over the (few) centres, one per (k, j) for the K x C terms.
#include <cfloat>
#include <vector>

#include "caffe/layers/multi_t_loss_layer.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

template <typename Dtype>
__global__ void MultiTSigmaProd(const int K, const int C, const Dtype* sigma,
    Dtype* sigma_prod) {
  CUDA_KERNEL_LOOP(j, C) {
    Dtype prod = 1;
    for (int k = 0; k < K; ++k) prod *= sigma[k * C + j];
    sigma_prod[j] = sqrt(prod);
  }
}

template <typename Dtype>
__device__ inline Dtype smallest_positive();
template <>
__device__ inline float smallest_positive<float>() { return FLT_MIN; }
template <>
__device__ inline double smallest_positive<double>() { return DBL_MIN; }

template <typename Dtype>
__global__ void MultiTAssign(const int M, const int C, const Dtype alpha,
    const Dtype* dist, const Dtype* p, const Dtype* sigma_prod, Dtype* proba,
    Dtype* ind, Dtype* mask, Dtype* residual, Dtype* row_loss) {
  const Dtype alpha_exp = (alpha + 1) / 2;
  const Dtype alpha_weight = (alpha + 1) / alpha;
  CUDA_KERNEL_LOOP(i, M) {
    const int row = i * C;
    Dtype norm = 0;
    for (int j = 0; j < C; ++j) {
      const Dtype w = Dtype(1) / (1 + max(dist[row + j], Dtype(0)) / alpha);
      mask[row + j] = w;
      const Dtype qu = sigma_prod[j] *
          (alpha_exp == Dtype(1) ? w : pow(w, alpha_exp));
      proba[row + j] = qu;
      norm += qu;
    }
    int best = 0;
    Dtype loss = 0;
    for (int j = 0; j < C; ++j) {
      const Dtype q = proba[row + j] / norm;
      proba[row + j] = q;
      if (q > proba[row + best]) best = j;
      const Dtype pij = p[row + j];
      residual[row + j] = pij - q;
      mask[row + j] *= alpha_weight * (pij - q);
      if (pij > 0) loss += pij * log(pij / max(q, smallest_positive<Dtype>()));
    }
    ind[i] = best;
    row_loss[i] = loss;
  }
}

template <typename Dtype>
__global__ void MultiTSigmaGrad(const int K, const int C, const Dtype scale,
    const Dtype* mu, const Dtype* sigma, const Dtype* zt_mask,
    const Dtype* zsq_mask, const Dtype* coefn, const Dtype* resn,
    Dtype* sigma_diff) {
  CUDA_KERNEL_LOOP(kj, K * C) {
    const int j = kj % C;
    const Dtype sq = zsq_mask[kj] - 2 * mu[kj] * zt_mask[kj] +
        mu[kj] * mu[kj] * coefn[j];
    sigma_diff[kj] += scale / 2 * (sq - resn[j] / sigma[kj]);
  }
}

template <typename Dtype>
__global__ void MultiTCenterGrad(const int K, const int C, const Dtype scale,
    const Dtype* mu, const Dtype* sigma, const Dtype* zt_mask,
    const Dtype* coefn, Dtype* mu_diff) {
  CUDA_KERNEL_LOOP(kj, K * C) {
    const int j = kj % C;
    mu_diff[kj] -= scale * sigma[kj] * (zt_mask[kj] - mu[kj] * coefn[j]);
  }
}

template <typename Dtype>
void MultiTLossLayer<Dtype>::Forward_gpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const Dtype* z = bottom[0]->gpu_data();
  const Dtype* mu = this->blobs_[0]->gpu_data();
  const Dtype* sigma = this->blobs_[1]->gpu_data();
  Dtype* dist = distance_.mutable_gpu_data();

  caffe_gpu_mul(M_ * K_, z, z, z_sqr_.mutable_gpu_data());
  caffe_gpu_mul(K_ * C_, mu, sigma, mu_sigma_.mutable_gpu_data());
  caffe_gpu_mul(K_ * C_, mu_sigma_.gpu_data(), mu,
      mu_sqr_sigma_.mutable_gpu_data());
  caffe_gpu_gemv<Dtype>(CblasTrans, K_, C_, Dtype(1), mu_sqr_sigma_.gpu_data(),
      ones_k_.gpu_data(), Dtype(0), center_term_.mutable_gpu_data());
  caffe_gpu_gemm<Dtype>(CblasNoTrans, CblasNoTrans, M_, C_, K_, Dtype(1),
      z_sqr_.gpu_data(), sigma, Dtype(0), dist);
  caffe_gpu_gemm<Dtype>(CblasNoTrans, CblasNoTrans, M_, C_, K_, Dtype(-2),
      z, mu_sigma_.gpu_data(), Dtype(1), dist);
  caffe_gpu_gemm<Dtype>(CblasNoTrans, CblasNoTrans, M_, C_, 1, Dtype(1),
      ones_m_.gpu_data(), center_term_.gpu_data(), Dtype(1), dist);

  // NOLINT_NEXT_LINE(whitespace/operators)
  MultiTSigmaProd<Dtype><<<CAFFE_GET_BLOCKS(C_), CAFFE_CUDA_NUM_THREADS>>>(
      K_, C_, sigma, sigma_prod_.mutable_gpu_data());
  CUDA_POST_KERNEL_CHECK;
  // NOLINT_NEXT_LINE(whitespace/operators)
  MultiTAssign<Dtype><<<CAFFE_GET_BLOCKS(M_), CAFFE_CUDA_NUM_THREADS>>>(
      M_, C_, alpha_, distance_.gpu_data(), bottom[1]->gpu_data(),
      sigma_prod_.gpu_data(), top[3]->mutable_gpu_data(),
      top[2]->mutable_gpu_data(), mask_.mutable_gpu_data(),
      residual_.mutable_gpu_data(), row_loss_.mutable_gpu_data());
  CUDA_POST_KERNEL_CHECK;
  Dtype loss;
  caffe_gpu_dot(M_, row_loss_.gpu_data(), ones_m_.gpu_data(), &loss);
  top[0]->mutable_cpu_data()[0] = loss / M_;
  top[1]->mutable_cpu_data()[0] = 0;
}

template <typename Dtype>
void MultiTLossLayer<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (propagate_down[1]) {
    LOG(FATAL) << this->type() << " cannot backpropagate to the targets p.";
  }
  const Dtype scale = top[0]->cpu_diff()[0] / M_;
  const Dtype* z = bottom[0]->gpu_data();
  const Dtype* mask = mask_.gpu_data();
  const Dtype* mu = this->blobs_[0]->gpu_data();
  const Dtype* sigma = this->blobs_[1]->gpu_data();
  if (propagate_down[0]) {
    Dtype* z_diff = bottom[0]->mutable_gpu_diff();
    caffe_gpu_gemm<Dtype>(CblasNoTrans, CblasTrans, M_, K_, C_, scale, mask,
        sigma, Dtype(0), z_diff);
    caffe_gpu_mul(M_ * K_, z_diff, z, z_diff);
    caffe_gpu_gemm<Dtype>(CblasNoTrans, CblasTrans, M_, K_, C_, -scale, mask,
        mu_sigma_.gpu_data(), Dtype(1), z_diff);
  }
  const bool mu_down = this->param_propagate_down(0);
  const bool sigma_down = this->param_propagate_down(1);
  if (!mu_down && !sigma_down) return;
  caffe_gpu_gemv<Dtype>(CblasTrans, M_, C_, Dtype(1), mask, ones_m_.gpu_data(),
      Dtype(0), coefn_.mutable_gpu_data());
  caffe_gpu_gemm<Dtype>(CblasTrans, CblasNoTrans, K_, C_, M_, Dtype(1), z,
      mask, Dtype(0), kc_buffer_.mutable_gpu_data());
  if (sigma_down) {
    caffe_gpu_gemv<Dtype>(CblasTrans, M_, C_, Dtype(1), residual_.gpu_data(),
        ones_m_.gpu_data(), Dtype(0), resn_.mutable_gpu_data());
    caffe_gpu_gemm<Dtype>(CblasTrans, CblasNoTrans, K_, C_, M_, Dtype(1),
        z_sqr_.gpu_data(), mask, Dtype(0), kc_buffer2_.mutable_gpu_data());
    // NOLINT_NEXT_LINE(whitespace/operators)
    MultiTSigmaGrad<Dtype><<<CAFFE_GET_BLOCKS(K_ * C_),
        CAFFE_CUDA_NUM_THREADS>>>(K_, C_, scale, mu, sigma,
        kc_buffer_.gpu_data(), kc_buffer2_.gpu_data(), coefn_.gpu_data(),
        resn_.gpu_data(), this->blobs_[1]->mutable_gpu_diff());
    CUDA_POST_KERNEL_CHECK;
  }
  if (mu_down) {
    // NOLINT_NEXT_LINE(whitespace/operators)
    MultiTCenterGrad<Dtype><<<CAFFE_GET_BLOCKS(K_ * C_),
        CAFFE_CUDA_NUM_THREADS>>>(K_, C_, scale, mu, sigma,
        kc_buffer_.gpu_data(), coefn_.gpu_data(),
        this->blobs_[0]->mutable_gpu_diff());
    CUDA_POST_KERNEL_CHECK;
  }
}

INSTANTIATE_LAYER_GPU_FUNCS(MultiTLossLayer);

}  // namespace caffe
