// Status checks for tests that call absl::Status and absl::StatusOr functions directly (the
// device and arena suites): the failure message is the status itself.
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

#define EXPECT_OK(expr)                   \
  do {                                    \
    const absl::Status status_ = (expr);  \
    EXPECT_TRUE(status_.ok()) << status_; \
  } while (0)
#define ASSERT_OK(expr)                   \
  do {                                    \
    const absl::Status status_ = (expr);  \
    ASSERT_TRUE(status_.ok()) << status_; \
  } while (0)
// Declares `name` holding the value of a StatusOr, failing the test when there is none.
#define ASSIGN_OR_FAIL(name, expr)                     \
  auto name##_or_ = (expr);                            \
  ASSERT_TRUE(name##_or_.ok()) << name##_or_.status(); \
  auto name = *std::move(name##_or_)
