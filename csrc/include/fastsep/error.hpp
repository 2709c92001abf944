// Errors of the C++ core. Nothing here depends on CUDA; cuda_check.hpp adds the CUDA/cuFFT checks.
#pragma once

#include <stdexcept>
#include <string>

namespace fastsep {

// Base of every exception the core throws on purpose.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// A caller-side mistake: bad configuration, shape or argument.
class InvalidArgument : public Error {
public:
    explicit InvalidArgument(const std::string& what) : Error(what) {}
};

// Audio that cannot be separated as it is: NaN or Inf samples, or values whose spectrum or network output
// overflows float32.
class InputError : public Error {
public:
    explicit InputError(const std::string& what) : Error(what) {}
};

// A call out of order: push after finish, pull past what is available.
class StateError : public Error {
public:
    explicit StateError(const std::string& what) : Error(what) {}
};

// A model that cannot be read or compiled, or whose inputs and outputs do not fit its configuration.
class ModelError : public Error {
public:
    explicit ModelError(const std::string& what) : Error(what) {}
};

// A failed CUDA runtime call, kernel launch or cuFFT call: carries the call, file and line.
class CudaError : public Error {
public:
    CudaError(const std::string& what, std::string call, std::string file, int line, int code)
        : Error(what), call_(std::move(call)), file_(std::move(file)), line_(line), code_(code) {}
    const std::string& call() const noexcept { return call_; }
    const std::string& file() const noexcept { return file_; }
    int line() const noexcept { return line_; }
    int code() const noexcept { return code_; }

private:
    std::string call_, file_;
    int line_, code_;
};

#define FASTSEP_REQUIRE(cond, msg)                                   \
    do {                                                             \
        if (!(cond)) throw ::fastsep::InvalidArgument(msg);          \
    } while (0)

}  // namespace fastsep
