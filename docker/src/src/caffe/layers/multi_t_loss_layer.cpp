// heobs-dec: MultiTLoss layer, CPU code (distances and gradients through BLAS).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "caffe/layers/multi_t_loss_layer.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

template <typename Dtype>
void MultiTLossLayer<Dtype>::LayerSetUp(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const MultiTLossParameter& param = this->layer_param_.multi_t_loss_param();
  C_ = param.num_center();
  CHECK_GT(C_, 0) << "MultiTLoss needs multi_t_loss_param.num_center > 0";
  alpha_ = param.alpha();
  CHECK_GT(alpha_, 0) << "MultiTLoss needs alpha > 0";
  K_ = bottom[0]->count(1);
  if (this->blobs_.size() > 0) {
    LOG(INFO) << "Skipping parameter initialization";
    CHECK_EQ(this->blobs_.size(), 3) << "MultiTLoss has 3 parameter blobs";
    CHECK_EQ(this->blobs_[0]->count(), K_ * C_)
        << "MultiTLoss centres do not match " << K_ << " x " << C_;
  } else {
    // As the fork: centres start as an identity pattern (DEC overwrites them
    // with k-means centres), inverse variances at 1, mixing weights at 1/C.
    this->blobs_.resize(3);
    this->blobs_[0].reset(new Blob<Dtype>(1, 1, K_, C_));
    this->blobs_[1].reset(new Blob<Dtype>(1, 1, K_, C_));
    this->blobs_[2].reset(new Blob<Dtype>(1, 1, 1, C_));
    Dtype* mu = this->blobs_[0]->mutable_cpu_data();
    for (int k = 0; k < K_; ++k) {
      for (int j = 0; j < C_; ++j) {
        mu[k * C_ + j] = Dtype(k == j);
      }
    }
    caffe_set(K_ * C_, Dtype(1), this->blobs_[1]->mutable_cpu_data());
    caffe_set(C_, Dtype(1) / C_, this->blobs_[2]->mutable_cpu_data());
  }
  // Only the centres are learned by default (the fork's choice); a net's
  // lr_mult (V1: blobs_lr) decides in the end.
  this->param_propagate_down_.resize(this->blobs_.size(), false);
  this->param_propagate_down_[0] = true;
  // Loss weights of the four tops: loss 1, the others 0 (as the fork).
  const Dtype default_weight[4] = {1, 0, 0, 0};
  for (int i = this->layer_param_.loss_weight_size(); i < 4; ++i) {
    this->layer_param_.add_loss_weight(default_weight[i]);
  }
}

template <typename Dtype>
void MultiTLossLayer<Dtype>::Reshape(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  M_ = bottom[0]->num();
  CHECK_EQ(bottom[0]->count(1), K_) << "MultiTLoss: embedding size changed";
  CHECK_EQ(bottom[1]->num(), M_)
      << "MultiTLoss: z and p must have the same number of samples";
  CHECK_EQ(bottom[1]->count(1), C_)
      << "MultiTLoss: p must have num_center = " << C_ << " columns";
  top[0]->Reshape(1, 1, 1, 1);
  top[1]->Reshape(1, 1, 1, 1);
  top[2]->Reshape(M_, 1, 1, 1);
  top[3]->Reshape(M_, C_, 1, 1);
  distance_.Reshape(M_, C_, 1, 1);
  mask_.Reshape(M_, C_, 1, 1);
  residual_.Reshape(M_, C_, 1, 1);
  row_loss_.Reshape(M_, 1, 1, 1);
  z_sqr_.Reshape(M_, K_, 1, 1);
  mu_sigma_.Reshape(1, 1, K_, C_);
  mu_sqr_sigma_.Reshape(1, 1, K_, C_);
  center_term_.Reshape(C_, 1, 1, 1);
  sigma_prod_.Reshape(C_, 1, 1, 1);
  coefn_.Reshape(C_, 1, 1, 1);
  resn_.Reshape(C_, 1, 1, 1);
  kc_buffer_.Reshape(1, 1, K_, C_);
  kc_buffer2_.Reshape(1, 1, K_, C_);
  if (ones_m_.count() != M_) {
    ones_m_.Reshape(M_, 1, 1, 1);
    caffe_set(M_, Dtype(1), ones_m_.mutable_cpu_data());
  }
  if (ones_k_.count() != K_) {
    ones_k_.Reshape(K_, 1, 1, 1);
    caffe_set(K_, Dtype(1), ones_k_.mutable_cpu_data());
  }
}

template <typename Dtype>
void MultiTLossLayer<Dtype>::Forward_cpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const Dtype* z = bottom[0]->cpu_data();
  const Dtype* p = bottom[1]->cpu_data();
  const Dtype* mu = this->blobs_[0]->cpu_data();
  const Dtype* sigma = this->blobs_[1]->cpu_data();
  Dtype* dist = distance_.mutable_cpu_data();

  // d = (z*z) s - 2 z (s*mu) + 1 (sum_k s*mu^2): three GEMMs, no M*K*C loop.
  caffe_sqr(M_ * K_, z, z_sqr_.mutable_cpu_data());
  caffe_mul(K_ * C_, mu, sigma, mu_sigma_.mutable_cpu_data());
  caffe_mul(K_ * C_, mu_sigma_.cpu_data(), mu,
      mu_sqr_sigma_.mutable_cpu_data());
  caffe_cpu_gemv<Dtype>(CblasTrans, K_, C_, Dtype(1), mu_sqr_sigma_.cpu_data(),
      ones_k_.cpu_data(), Dtype(0), center_term_.mutable_cpu_data());
  caffe_cpu_gemm<Dtype>(CblasNoTrans, CblasNoTrans, M_, C_, K_, Dtype(1),
      z_sqr_.cpu_data(), sigma, Dtype(0), dist);
  caffe_cpu_gemm<Dtype>(CblasNoTrans, CblasNoTrans, M_, C_, K_, Dtype(-2),
      z, mu_sigma_.cpu_data(), Dtype(1), dist);
  caffe_cpu_gemm<Dtype>(CblasNoTrans, CblasNoTrans, M_, C_, 1, Dtype(1),
      ones_m_.cpu_data(), center_term_.cpu_data(), Dtype(1), dist);

  Dtype* sigma_prod = sigma_prod_.mutable_cpu_data();
  for (int j = 0; j < C_; ++j) {
    Dtype prod = 1;
    for (int k = 0; k < K_; ++k) prod *= sigma[k * C_ + j];
    sigma_prod[j] = std::sqrt(prod);
  }

  const Dtype alpha_exp = (alpha_ + 1) / 2;
  const Dtype alpha_weight = (alpha_ + 1) / alpha_;
  const Dtype tiny = std::numeric_limits<Dtype>::min();
  Dtype* mask = mask_.mutable_cpu_data();
  Dtype* residual = residual_.mutable_cpu_data();
  Dtype* ind = top[2]->mutable_cpu_data();
  Dtype* proba = top[3]->mutable_cpu_data();
  Dtype loss = 0;
  for (int i = 0; i < M_; ++i) {
    const int row = i * C_;
    Dtype norm = 0;
    for (int j = 0; j < C_; ++j) {
      // Cancellation in the expanded distance can go slightly below 0.
      const Dtype w = Dtype(1) / (1 + std::max(dist[row + j], Dtype(0)) / alpha_);
      mask[row + j] = w;
      const Dtype qu = sigma_prod[j] *
          (alpha_exp == Dtype(1) ? w : std::pow(w, alpha_exp));
      proba[row + j] = qu;
      norm += qu;
    }
    int best = 0;
    for (int j = 0; j < C_; ++j) {
      const Dtype q = proba[row + j] / norm;
      proba[row + j] = q;
      if (q > proba[row + best]) best = j;
      const Dtype pij = p[row + j];
      residual[row + j] = pij - q;
      mask[row + j] *= alpha_weight * (pij - q);
      if (pij > 0) loss += pij * std::log(pij / std::max(q, tiny));
    }
    ind[i] = best;
  }
  top[0]->mutable_cpu_data()[0] = loss / M_;
  top[1]->mutable_cpu_data()[0] = 0;
}

template <typename Dtype>
void MultiTLossLayer<Dtype>::Backward_cpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (propagate_down[1]) {
    LOG(FATAL) << this->type() << " cannot backpropagate to the targets p.";
  }
  const Dtype scale = top[0]->cpu_diff()[0] / M_;
  const Dtype* z = bottom[0]->cpu_data();
  const Dtype* mask = mask_.cpu_data();
  const Dtype* mu = this->blobs_[0]->cpu_data();
  const Dtype* sigma = this->blobs_[1]->cpu_data();
  if (propagate_down[0]) {
    // dL/dz_i = scale * sum_j mask_ij s_.j * (z_i - mu_j)
    //         = scale * (z * (mask s^T) - mask (s*mu)^T)
    Dtype* z_diff = bottom[0]->mutable_cpu_diff();
    caffe_cpu_gemm<Dtype>(CblasNoTrans, CblasTrans, M_, K_, C_, scale, mask,
        sigma, Dtype(0), z_diff);
    caffe_mul(M_ * K_, z_diff, z, z_diff);
    caffe_cpu_gemm<Dtype>(CblasNoTrans, CblasTrans, M_, K_, C_, -scale, mask,
        mu_sigma_.cpu_data(), Dtype(1), z_diff);
  }
  const bool mu_down = this->param_propagate_down(0);
  const bool sigma_down = this->param_propagate_down(1);
  if (!mu_down && !sigma_down) return;
  // Column sums over the batch and z^T mask (K x C), shared by both.
  caffe_cpu_gemv<Dtype>(CblasTrans, M_, C_, Dtype(1), mask, ones_m_.cpu_data(),
      Dtype(0), coefn_.mutable_cpu_data());
  caffe_cpu_gemm<Dtype>(CblasTrans, CblasNoTrans, K_, C_, M_, Dtype(1), z,
      mask, Dtype(0), kc_buffer_.mutable_cpu_data());
  const Dtype* coefn = coefn_.cpu_data();
  const Dtype* zt_mask = kc_buffer_.cpu_data();
  if (sigma_down) {
    // dL/ds_kj = scale/2 * (sum_i mask_ij (z_ik - mu_kj)^2 - sum_i r_ij / s_kj)
    caffe_cpu_gemv<Dtype>(CblasTrans, M_, C_, Dtype(1), residual_.cpu_data(),
        ones_m_.cpu_data(), Dtype(0), resn_.mutable_cpu_data());
    caffe_cpu_gemm<Dtype>(CblasTrans, CblasNoTrans, K_, C_, M_, Dtype(1),
        z_sqr_.cpu_data(), mask, Dtype(0), kc_buffer2_.mutable_cpu_data());
    const Dtype* zsq_mask = kc_buffer2_.cpu_data();
    const Dtype* resn = resn_.cpu_data();
    Dtype* sigma_diff = this->blobs_[1]->mutable_cpu_diff();
    for (int k = 0; k < K_; ++k) {
      for (int j = 0; j < C_; ++j) {
        const int kj = k * C_ + j;
        const Dtype sq = zsq_mask[kj] - 2 * mu[kj] * zt_mask[kj] +
            mu[kj] * mu[kj] * coefn[j];
        sigma_diff[kj] += scale / 2 * (sq - resn[j] / sigma[kj]);
      }
    }
  }
  if (mu_down) {
    // dL/dmu_kj = -scale * s_kj * (sum_i mask_ij z_ik - mu_kj sum_i mask_ij),
    // accumulated into the diff as Caffe expects of parameter gradients.
    Dtype* mu_diff = this->blobs_[0]->mutable_cpu_diff();
    for (int k = 0; k < K_; ++k) {
      for (int j = 0; j < C_; ++j) {
        const int kj = k * C_ + j;
        mu_diff[kj] -= scale * sigma[kj] * (zt_mask[kj] - mu[kj] * coefn[j]);
      }
    }
  }
}

#ifdef CPU_ONLY
STUB_GPU(MultiTLossLayer);
#endif

INSTANTIATE_CLASS(MultiTLossLayer);
REGISTER_LAYER_CLASS(MultiTLoss);

}  // namespace caffe
