# The C SDK's install tree (docs/c_api.md, "Building against it"), laid out as pybind11 and OpenVINO ship theirs:
#   ${FASTSEP_SDK_PREFIX}include/fastsep.h
#   ${FASTSEP_SDK_PREFIX}lib/libfastsep.so
#   ${FASTSEP_SDK_PREFIX}lib/cmake/fastsep/fastsepConfig.cmake, fastsepConfigVersion.cmake
#   ${FASTSEP_SDK_PREFIX}lib/pkgconfig/fastsep.pc
# FASTSEP_SDK_PREFIX is "fastsep/" in the wheel (scikit-build-core installs to the wheel's root, so the files land
# in the package folder, where `fastsep sdk` finds them) and "" in a plain `cmake --install --prefix X`.
# Both config files are relocatable (paths relative to where they are found), so a wheel installed anywhere works.
# Only the shared library is installed: fastsep_cpu (static) is inside it, OpenVINO is reached by its rpath.
if(NOT TARGET fastsep)
  message(STATUS "fastsep: no C library target in this build (OpenVINO not found): the C SDK is not installed")
  return()
endif()
# Not cached unless given (-DFASTSEP_SDK_PREFIX=...): a build folder reused with the other FASTSEP_PYTHON follows it.
if(NOT DEFINED FASTSEP_SDK_PREFIX)
  if(FASTSEP_PYTHON)
    set(FASTSEP_SDK_PREFIX "fastsep/")
  else()
    set(FASTSEP_SDK_PREFIX "")
  endif()
endif()

# One version: pyproject.toml's (scikit-build-core passes it; a plain build reads the file).
if(DEFINED SKBUILD_PROJECT_VERSION)
  set(FASTSEP_SDK_VERSION "${SKBUILD_PROJECT_VERSION}")
else()
  file(STRINGS "${CMAKE_CURRENT_SOURCE_DIR}/pyproject.toml" _version_line REGEX "^version = \"[^\"]+\"" LIMIT_COUNT 1)
  string(REGEX REPLACE "^version = \"([^\"]+)\"" "\\1" FASTSEP_SDK_VERSION "${_version_line}")
endif()
if(NOT FASTSEP_SDK_VERSION MATCHES "^[0-9]+\\.[0-9]+")
  message(FATAL_ERROR "fastsep: no version found for the C SDK (pyproject.toml's [project] version)")
endif()
set(FASTSEP_SDK_LIBRARY "${CMAKE_SHARED_LIBRARY_PREFIX}fastsep${CMAKE_SHARED_LIBRARY_SUFFIX}")

# Programs linked against libfastsep run with an empty environment: its own rpath reaches OpenVINO's libraries.
# In the wheel: the openvino wheel beside the package (site-packages/fastsep/lib -> site-packages/openvino/libs);
# in a plain build: where OpenVINO was found at build time.
if(FASTSEP_PYTHON AND APPLE)
  set(_sdk_rpath "@loader_path/../../openvino/libs")
elseif(FASTSEP_PYTHON)
  set(_sdk_rpath "$ORIGIN/../../openvino/libs")
else()
  set(_sdk_rpath "${_ov_libdir}")
endif()
set_target_properties(fastsep PROPERTIES INSTALL_RPATH "${_sdk_rpath}")
if(_ov_libdir)
  set_property(TARGET fastsep APPEND PROPERTY BUILD_RPATH "${_ov_libdir}")
endif()

install(FILES "${CMAKE_CURRENT_SOURCE_DIR}/csrc/include/fastsep.h" DESTINATION "${FASTSEP_SDK_PREFIX}include")
install(TARGETS fastsep
        LIBRARY DESTINATION "${FASTSEP_SDK_PREFIX}lib"
        RUNTIME DESTINATION "${FASTSEP_SDK_PREFIX}lib"
        ARCHIVE DESTINATION "${FASTSEP_SDK_PREFIX}lib")

include(CMakePackageConfigHelpers)
set(_sdk_out "${CMAKE_CURRENT_BINARY_DIR}/sdk")
configure_file("${CMAKE_CURRENT_SOURCE_DIR}/cmake/fastsepConfig.cmake.in" "${_sdk_out}/fastsepConfig.cmake" @ONLY)
# Below 1.0 a minor release may change the C ABI (FASTSEP_ABI_VERSION says which), so a request for 0.1 accepts
# 0.1.x only.
write_basic_package_version_file("${_sdk_out}/fastsepConfigVersion.cmake" VERSION "${FASTSEP_SDK_VERSION}"
                                 COMPATIBILITY SameMinorVersion)
# GNU ld and lld: keep libfastsep where the flags come before the sources under --as-needed (fastsep.pc.in);
# Apple's linker has no --push-state and keeps every named library anyway.
if(APPLE)
  set(FASTSEP_PC_LINK "-lfastsep")
else()
  set(FASTSEP_PC_LINK "-Wl,--push-state,--no-as-needed -lfastsep -Wl,--pop-state")
endif()
configure_file("${CMAKE_CURRENT_SOURCE_DIR}/cmake/fastsep.pc.in" "${_sdk_out}/fastsep.pc" @ONLY)
install(FILES "${_sdk_out}/fastsepConfig.cmake" "${_sdk_out}/fastsepConfigVersion.cmake"
        DESTINATION "${FASTSEP_SDK_PREFIX}lib/cmake/fastsep")
install(FILES "${_sdk_out}/fastsep.pc" DESTINATION "${FASTSEP_SDK_PREFIX}lib/pkgconfig")
message(STATUS "fastsep: C SDK ${FASTSEP_SDK_VERSION} installed under <prefix>/${FASTSEP_SDK_PREFIX} "
               "(library rpath: ${_sdk_rpath})")
