// heobs-dec: DEC's clustering loss (Xie et al., ICML 2016) for BVLC Caffe.
// Same interface and semantics as MultiTLossLayer of the DEC authors' Caffe
// fork (piiswrong/dec), which had a GPU implementation only; this one has CPU
// (BLAS) and CUDA code. See engine/README.md for the maths.
#ifndef CAFFE_MULTI_T_LOSS_LAYER_HPP_
#define CAFFE_MULTI_T_LOSS_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/proto/caffe.pb.h"

namespace caffe {

/**
 * @brief KL(P || Q) between a target distribution P and the soft assignment
 *        Q of embeddings to cluster centres under a Student's t kernel.
 *
 * Bottoms: z (M x K embeddings), p (M x C targets, rows summing to 1).
 * Parameter blobs: 0 centres mu (1,1,K,C), column j is centre j;
 *                  1 inverse variances s (1,1,K,C), all 1;
 *                  2 mixing weights (1,1,1,C), 1/C (stored, unused, as in
 *                    the fork).
 * With d_ij = sum_k s_kj (z_ik - mu_kj)^2 and w_ij = 1 / (1 + d_ij / alpha):
 *   q_ij = sqrt(prod_k s_kj) w_ij^((alpha+1)/2), normalised over j,
 *   loss = 1/M sum_ij p_ij log(p_ij / q_ij)   (0 log 0 = 0).
 * Tops: loss (weight 1); std (weight 0; always 0 here — the fork declares it
 * and never writes it); ind (M: argmax_j q_ij); proba (M x C: q).
 */
template <typename Dtype>
class MultiTLossLayer : public Layer<Dtype> {
 public:
  explicit MultiTLossLayer(const LayerParameter& param)
      : Layer<Dtype>(param) {}
  virtual void LayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);

  virtual inline const char* type() const { return "MultiTLoss"; }
  virtual inline int ExactNumBottomBlobs() const { return 2; }
  virtual inline int ExactNumTopBlobs() const { return 4; }
  virtual inline bool AutoTopBlobs() const { return true; }
  // p is a target, not something to learn.
  virtual inline bool AllowForceBackward(const int bottom_index) const {
    return bottom_index != 1;
  }

 protected:
  virtual void Forward_cpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Forward_gpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Backward_cpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);
  virtual void Backward_gpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);

  int M_;  // samples in the batch
  int K_;  // embedding dimension
  int C_;  // number of centres (num_center)
  Dtype alpha_;

  Blob<Dtype> distance_;   // M x C: d_ij
  Blob<Dtype> mask_;       // M x C: (alpha+1)/alpha w_ij (p_ij - q_ij)
  Blob<Dtype> residual_;   // M x C: p_ij - q_ij (for the gradient of s)
  Blob<Dtype> row_loss_;   // M: sum_j p_ij log(p_ij / q_ij)
  Blob<Dtype> z_sqr_;      // M x K: z_ik^2
  Blob<Dtype> mu_sigma_;   // K x C: s_kj mu_kj
  Blob<Dtype> mu_sqr_sigma_;  // K x C: s_kj mu_kj^2
  Blob<Dtype> center_term_;   // C: sum_k s_kj mu_kj^2
  Blob<Dtype> sigma_prod_;    // C: sqrt(prod_k s_kj)
  Blob<Dtype> coefn_;      // C: sum_i mask_ij
  Blob<Dtype> resn_;       // C: sum_i residual_ij
  Blob<Dtype> kc_buffer_;  // K x C scratch
  Blob<Dtype> kc_buffer2_;  // K x C scratch
  Blob<Dtype> ones_m_;     // M ones
  Blob<Dtype> ones_k_;     // K ones
};

}  // namespace caffe

#endif  // CAFFE_MULTI_T_LOSS_LAYER_HPP_
