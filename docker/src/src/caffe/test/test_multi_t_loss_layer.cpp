// heobs-dec: tests of the MultiTLoss layer (CPU, and GPU where built).
#include <cmath>
#include <vector>

#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/common.hpp"
#include "caffe/filler.hpp"
#include "caffe/layers/multi_t_loss_layer.hpp"

#include "caffe/test/test_caffe_main.hpp"
#include "caffe/test/test_gradient_check_util.hpp"

namespace caffe {

template <typename TypeParam>
class MultiTLossLayerTest : public MultiDeviceTest<TypeParam> {
  typedef typename TypeParam::Dtype Dtype;

 protected:
  MultiTLossLayerTest()
      : M_(7), K_(4), C_(3),
        blob_z_(new Blob<Dtype>(M_, K_, 1, 1)),
        blob_p_(new Blob<Dtype>(M_, C_, 1, 1)),
        blob_loss_(new Blob<Dtype>()), blob_std_(new Blob<Dtype>()),
        blob_ind_(new Blob<Dtype>()), blob_proba_(new Blob<Dtype>()) {
    Caffe::set_random_seed(1701);
    FillerParameter filler_param;
    filler_param.set_std(1);
    GaussianFiller<Dtype> gaussian(filler_param);
    gaussian.Fill(blob_z_);
    // Targets: positive rows that sum to one (DEC's p is a distribution).
    caffe_rng_uniform<Dtype>(blob_p_->count(), Dtype(0.05), Dtype(1),
        blob_p_->mutable_cpu_data());
    Dtype* p = blob_p_->mutable_cpu_data();
    for (int i = 0; i < M_; ++i) {
      Dtype sum = 0;
      for (int j = 0; j < C_; ++j) sum += p[i * C_ + j];
      for (int j = 0; j < C_; ++j) p[i * C_ + j] /= sum;
    }
    bottom_.push_back(blob_z_);
    bottom_.push_back(blob_p_);
    top_.push_back(blob_loss_);
    top_.push_back(blob_std_);
    top_.push_back(blob_ind_);
    top_.push_back(blob_proba_);
  }
  virtual ~MultiTLossLayerTest() {
    delete blob_z_; delete blob_p_; delete blob_loss_; delete blob_std_;
    delete blob_ind_; delete blob_proba_;
  }

  LayerParameter MakeParam(float alpha) {
    LayerParameter param;
    param.mutable_multi_t_loss_param()->set_num_center(C_);
    param.mutable_multi_t_loss_param()->set_alpha(alpha);
    return param;
  }

  // Random centres and positive inverse variances instead of the identity/1
  // start, so that every term of the maths is exercised.
  void Randomize(MultiTLossLayer<Dtype>* layer) {
    FillerParameter filler_param;
    filler_param.set_std(1);
    GaussianFiller<Dtype> gaussian(filler_param);
    gaussian.Fill(layer->blobs()[0].get());
    caffe_rng_uniform<Dtype>(layer->blobs()[1]->count(), Dtype(0.5),
        Dtype(1.5), layer->blobs()[1]->mutable_cpu_data());
  }

  // Straightforward double-precision reference of the forward pass and of
  // the gradients w.r.t. z and mu (direct loops, no GEMM). Relative error
  // allowed: 1e-4 in float, 1e-9 in double.
  void CheckForwardBackward(float alpha) {
    const double tol = sizeof(Dtype) == sizeof(float) ? 1e-4 : 1e-9;
    LayerParameter param = MakeParam(alpha);
    MultiTLossLayer<Dtype> layer(param);
    layer.SetUp(bottom_, top_);
    Randomize(&layer);
    layer.Forward(bottom_, top_);
    caffe_set(layer.blobs()[0]->count(), Dtype(0),
              layer.blobs()[0]->mutable_cpu_diff());
    blob_loss_->mutable_cpu_diff()[0] = 1;
    vector<bool> down(2, false);
    down[0] = true;
    layer.Backward(top_, down, bottom_);
    const Dtype* z = blob_z_->cpu_data();
    const Dtype* p = blob_p_->cpu_data();
    const Dtype* mu = layer.blobs()[0]->cpu_data();
    const Dtype* s = layer.blobs()[1]->cpu_data();
    double loss = 0;
    std::vector<double> dz(M_ * K_, 0), dmu(K_ * C_, 0);
    for (int i = 0; i < M_; ++i) {
      std::vector<double> q(C_), w(C_);
      double norm = 0;
      for (int j = 0; j < C_; ++j) {
        double d = 0, prod = 1;
        for (int k = 0; k < K_; ++k) {
          const double diff = z[i * K_ + k] - mu[k * C_ + j];
          d += diff * diff * s[k * C_ + j];
          prod *= s[k * C_ + j];
        }
        w[j] = 1.0 / (1.0 + d / alpha);
        q[j] = std::sqrt(prod) * std::pow(w[j], (alpha + 1.0) / 2.0);
        norm += q[j];
      }
      int best = 0;
      for (int j = 0; j < C_; ++j) {
        q[j] /= norm;
        if (q[j] > q[best]) best = j;
        EXPECT_NEAR(q[j], blob_proba_->cpu_data()[i * C_ + j], tol * q[j]);
        const double pij = p[i * C_ + j];
        loss += pij * std::log(pij / q[j]);
        const double coef = (alpha + 1.0) / alpha * w[j] * (pij - q[j]) / M_;
        for (int k = 0; k < K_; ++k) {
          const double g = coef * s[k * C_ + j] * (z[i * K_ + k] - mu[k * C_ + j]);
          dz[i * K_ + k] += g;
          dmu[k * C_ + j] -= g;
        }
      }
      EXPECT_EQ(best, static_cast<int>(blob_ind_->cpu_data()[i]));
    }
    loss /= M_;
    EXPECT_NEAR(loss, blob_loss_->cpu_data()[0], tol * loss);
    EXPECT_EQ(0, blob_std_->cpu_data()[0]);
    ExpectRelativelyClose(dz, blob_z_->cpu_diff(), tol);
    ExpectRelativelyClose(dmu, layer.blobs()[0]->cpu_diff(), tol);
  }

  // ||actual - expected|| <= tol * ||expected||
  void ExpectRelativelyClose(const std::vector<double>& expected,
      const Dtype* actual, double tol) {
    double err = 0, size = 0;
    for (int i = 0; i < expected.size(); ++i) {
      err += (actual[i] - expected[i]) * (actual[i] - expected[i]);
      size += expected[i] * expected[i];
    }
    EXPECT_LE(std::sqrt(err), tol * std::sqrt(size));
  }

  int M_, K_, C_;
  Blob<Dtype>* const blob_z_;
  Blob<Dtype>* const blob_p_;
  Blob<Dtype>* const blob_loss_;
  Blob<Dtype>* const blob_std_;
  Blob<Dtype>* const blob_ind_;
  Blob<Dtype>* const blob_proba_;
  vector<Blob<Dtype>*> bottom_;
  vector<Blob<Dtype>*> top_;
};

TYPED_TEST_CASE(MultiTLossLayerTest, TestDtypesAndDevices);

TYPED_TEST(MultiTLossLayerTest, TestSetUp) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter param = this->MakeParam(1);
  MultiTLossLayer<Dtype> layer(param);
  layer.SetUp(this->bottom_, this->top_);
  ASSERT_EQ(3, layer.blobs().size());
  EXPECT_EQ(this->K_ * this->C_, layer.blobs()[0]->count());
  EXPECT_EQ(this->K_, layer.blobs()[0]->height());
  EXPECT_EQ(this->C_, layer.blobs()[0]->width());
  EXPECT_EQ(this->C_, layer.blobs()[2]->count());
  // The fork's start: identity centres, unit inverse variances, uniform pi.
  for (int k = 0; k < this->K_; ++k) {
    for (int j = 0; j < this->C_; ++j) {
      EXPECT_EQ(Dtype(k == j), layer.blobs()[0]->cpu_data()[k * this->C_ + j]);
      EXPECT_EQ(Dtype(1), layer.blobs()[1]->cpu_data()[k * this->C_ + j]);
    }
  }
  EXPECT_NEAR(Dtype(1) / this->C_, layer.blobs()[2]->cpu_data()[0], 1e-7);
  EXPECT_EQ(1, this->blob_loss_->count());
  EXPECT_EQ(this->M_, this->blob_ind_->count());
  EXPECT_EQ(this->M_ * this->C_, this->blob_proba_->count());
  EXPECT_EQ(Dtype(1), layer.loss(0));
  EXPECT_EQ(Dtype(0), layer.loss(1));
  EXPECT_EQ(Dtype(0), layer.loss(2));
  EXPECT_EQ(Dtype(0), layer.loss(3));
  EXPECT_TRUE(layer.param_propagate_down(0));
  EXPECT_FALSE(layer.param_propagate_down(1));
  EXPECT_FALSE(layer.param_propagate_down(2));
}

TYPED_TEST(MultiTLossLayerTest, TestForwardBackward) {
  this->CheckForwardBackward(1);
}

TYPED_TEST(MultiTLossLayerTest, TestForwardBackwardAlpha) {
  this->CheckForwardBackward(2.5);
}

TYPED_TEST(MultiTLossLayerTest, TestZeroTargetsGiveFiniteLoss) {
  typedef typename TypeParam::Dtype Dtype;
  Dtype* p = this->blob_p_->mutable_cpu_data();
  for (int i = 0; i < this->M_; ++i) {
    for (int j = 0; j < this->C_; ++j) p[i * this->C_ + j] = Dtype(j == 0);
  }
  LayerParameter param = this->MakeParam(1);
  MultiTLossLayer<Dtype> layer(param);
  layer.SetUp(this->bottom_, this->top_);
  layer.Forward(this->bottom_, this->top_);
  const Dtype loss = this->blob_loss_->cpu_data()[0];
  EXPECT_TRUE(std::isfinite(static_cast<double>(loss)));
  EXPECT_GT(loss, 0);
}

TYPED_TEST(MultiTLossLayerTest, TestGradient) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter param = this->MakeParam(1);
  MultiTLossLayer<Dtype> layer(param);
  layer.SetUp(this->bottom_, this->top_);
  this->Randomize(&layer);
  // Check centres and inverse variances (blob 2 has no effect: gradient 0).
  layer.set_param_propagate_down(1, true);
  GradientChecker<Dtype> checker(1e-2, 1e-2, 1701);
  checker.CheckGradientSingle(&layer, this->bottom_, this->top_, 0, 0, 0);
}

TYPED_TEST(MultiTLossLayerTest, TestGradientAlpha) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter param = this->MakeParam(2.5);
  MultiTLossLayer<Dtype> layer(param);
  layer.SetUp(this->bottom_, this->top_);
  this->Randomize(&layer);
  layer.set_param_propagate_down(1, true);
  GradientChecker<Dtype> checker(1e-2, 1e-2, 1701);
  checker.CheckGradientSingle(&layer, this->bottom_, this->top_, 0, 0, 0);
}

TYPED_TEST(MultiTLossLayerTest, TestCenterGradientAccumulates) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter param = this->MakeParam(1);
  MultiTLossLayer<Dtype> layer(param);
  layer.SetUp(this->bottom_, this->top_);
  this->Randomize(&layer);
  Blob<Dtype>* mu = layer.blobs()[0].get();
  caffe_set(mu->count(), Dtype(0), mu->mutable_cpu_diff());
  vector<bool> down(2, false);
  down[0] = true;
  layer.Forward(this->bottom_, this->top_);
  this->blob_loss_->mutable_cpu_diff()[0] = 1;
  layer.Backward(this->top_, down, this->bottom_);
  vector<Dtype> once(mu->cpu_diff(), mu->cpu_diff() + mu->count());
  layer.Backward(this->top_, down, this->bottom_);
  for (int i = 0; i < mu->count(); ++i) {
    EXPECT_NEAR(2 * once[i], mu->cpu_diff()[i], 1e-6);
  }
}

}  // namespace caffe
