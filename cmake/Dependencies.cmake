# Finds Abseil, GoogleTest, Google Benchmark and the CUDA toolkit.
# With VRAMCACHE_STATIC_DEPS, Abseil's imported targets are pointed at its static archives so
# the binaries we carry to other machines need neither Abseil nor libcudart there.
find_package(absl REQUIRED)
find_package(Threads REQUIRED)
get_target_property(_absl_base_location absl::base IMPORTED_LOCATION_NONE)
get_filename_component(VRAMCACHE_ABSL_LIBDIR "${_absl_base_location}" DIRECTORY)

if(VRAMCACHE_STATIC_DEPS)
  foreach(_lib IN ITEMS base bad_any_cast_impl bad_optional_access bad_variant_access city
          civil_time cord cord_internal cordz_functions cordz_handle cordz_info debugging_internal
          demangle_internal examine_stack exponential_biased graphcycles_internal hash
          hashtablez_sampler int128 leak_check log_severity low_level_hash malloc_internal
          raw_hash_set raw_logging_internal spinlock_wait stacktrace status statusor
          str_format_internal strerror strings strings_internal symbolize synchronization
          throw_delegate time time_zone random_distributions random_internal_platform
          random_internal_pool_urbg random_internal_randen random_internal_randen_hwaes
          random_internal_randen_hwaes_impl random_internal_randen_slow
          random_internal_seed_material random_seed_gen_exception random_seed_sequences)
    if(TARGET absl::${_lib})
      get_target_property(_loc absl::${_lib} IMPORTED_LOCATION_NONE)
      if(_loc)
        string(REGEX REPLACE "\\.so[.0-9]*$" ".a" _static "${_loc}")
        if(EXISTS "${_static}")
          set_target_properties(absl::${_lib} PROPERTIES IMPORTED_LOCATION_NONE "${_static}")
        endif()
      endif()
    endif()
  endforeach()
endif()

if(VRAMCACHE_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(VRAMCACHE_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

include(CheckLanguage)
check_language(CUDA)
set(VRAMCACHE_HAS_CUDA OFF)
if(CMAKE_CUDA_COMPILER)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)
  endif()
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  set(VRAMCACHE_HAS_CUDA ON)
  if(VRAMCACHE_STATIC_DEPS)
    set(VRAMCACHE_CUDART CUDA::cudart_static)
  else()
    set(VRAMCACHE_CUDART CUDA::cudart)
  endif()
  message(STATUS "vramcache: CUDA ${CUDAToolkit_VERSION} found; CUDA backend and kernels enabled")
else()
  message(STATUS "vramcache: no CUDA compiler; building the simulated device only")
endif()
