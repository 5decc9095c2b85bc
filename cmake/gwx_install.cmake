# `cmake --install BUILD --prefix PREFIX`: the binaries, the public headers, the libraries and a
# CMake package plus pkg-config files for building outside this tree against the installed gwx.
#
#   find_package(gwx)   gwx::sdk         apps loaded by `gwx-worker --app ./libmyapp.so`: the SDK
#                                        headers only; the SDK's code comes from gwx-worker
#                       gwx::sdk_static  the SDK's code too, to run a gwx::worker in your own main
#                       gwx::client      gwx::Client (and the Gateway API) for push processes
#   pkg-config          gwx-sdk (apps), gwx-client (push processes)
#
# Included at the end of the top-level CMakeLists.txt, once every target exists.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# The public headers: everything an app or a push process includes, and everything those include
# from this project — nothing more (no sockets, asio, gRPC, protobuf or generated code). Installed
# under include/gwx/ with their paths in the repository, so `#include "worker/sdk/app.hpp"`
# reads the same in and out of the tree. tests/e2e/test_install.py checks that each one compiles
# on its own against the installed tree and pulls in no third-party header.
set(GWX_PUBLIC_HEADERS
  worker/sdk/app.hpp
  worker/sdk/handler.hpp
  worker/sdk/context.hpp
  worker/sdk/worker.hpp
  common/cluster/client.hpp
  common/cluster/gateway_api.hpp
  common/cluster/types.hpp
  common/cluster/cluster_options.hpp
  common/registry/gateway_watcher.hpp
  common/net/endpoint.hpp
  common/net/tls_files.hpp)
set(GWX_INCLUDE_SUBDIR ${CMAKE_INSTALL_INCLUDEDIR}/gwx)

set(GWX_INSTALLED_BINARIES gwx-register gwx-gateway gwx-worker gwxctl gwx-bench)

# ---- package targets (also usable in-tree under the same names) ----
add_library(gwx_pkg_headers INTERFACE)
target_sources(gwx_pkg_headers INTERFACE FILE_SET HEADERS BASE_DIRS ${PROJECT_SOURCE_DIR}
  FILES ${GWX_PUBLIC_HEADERS})
target_compile_features(gwx_pkg_headers INTERFACE cxx_std_20)
set_target_properties(gwx_pkg_headers PROPERTIES EXPORT_NAME headers)

add_library(gwx_pkg_sdk INTERFACE)
target_link_libraries(gwx_pkg_sdk INTERFACE gwx_pkg_headers)
set_target_properties(gwx_pkg_sdk PROPERTIES EXPORT_NAME sdk)

add_library(gwx_pkg_sdk_static INTERFACE)
target_link_libraries(gwx_pkg_sdk_static INTERFACE gwx_pkg_headers gwx_worker_sdk)
set_target_properties(gwx_pkg_sdk_static PROPERTIES EXPORT_NAME sdk_static)

add_library(gwx_pkg_client INTERFACE)
target_link_libraries(gwx_pkg_client INTERFACE gwx_pkg_headers gwx_cluster)
set_target_properties(gwx_pkg_client PROPERTIES EXPORT_NAME client)

foreach(name headers sdk sdk_static client)
  add_library(gwx::${name} ALIAS gwx_pkg_${name})
endforeach()

# A sanitizer build's archives need the sanitizer runtime wherever they are linked.
if(GWX_SANITIZE STREQUAL "address")
  set(GWX_SANITIZE_LINK_FLAG "-fsanitize=address,undefined")
elseif(GWX_SANITIZE STREQUAL "thread")
  set(GWX_SANITIZE_LINK_FLAG "-fsanitize=thread")
else()
  set(GWX_SANITIZE_LINK_FLAG "")
endif()
if(GWX_SANITIZE_LINK_FLAG)
  foreach(t gwx_pkg_sdk_static gwx_pkg_client)
    target_link_options(${t} INTERFACE $<INSTALL_INTERFACE:${GWX_SANITIZE_LINK_FLAG}>)
  endforeach()
endif()

# ---- the internal static libraries behind gwx::client and gwx::sdk_static ----
# Found by walking the link interfaces, so a library added to the SDK's or the client's closure is
# exported without touching this file. Their include directories (into the source and build
# trees, which the package does not ship) and compile definitions (ASIO_STANDALONE…) are for
# building gwx itself, not for its users, whose public headers need neither (include/gwx comes
# from gwx::headers): both are kept for the build tree only. External dependencies are collected
# on the way, for the package's find_dependency calls and the pkg-config files.
function(gwx_walk_link_interface target out_internal out_external)
  set(internal ${${out_internal}})
  set(external ${${out_external}})
  get_target_property(deps ${target} INTERFACE_LINK_LIBRARIES)
  if(NOT deps)
    set(deps "")
  endif()
  foreach(dep IN LISTS deps)
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" dep "${dep}")
    if(dep MATCHES "^\\$<")
      message(FATAL_ERROR "gwx install: cannot export ${target}'s link dependency ${dep}")
    endif()
    if(TARGET ${dep})
      get_target_property(aliased ${dep} ALIASED_TARGET)
      if(aliased)
        set(dep ${aliased})
      endif()
      get_target_property(imported ${dep} IMPORTED)
      if(imported)
        if(NOT dep IN_LIST external)
          list(APPEND external ${dep})
        endif()
      elseif(NOT dep IN_LIST internal)
        list(APPEND internal ${dep})
        gwx_walk_link_interface(${dep} internal external)
        # Post-order: a library's dependencies are listed before it.
        list(REMOVE_ITEM internal ${dep})
        list(APPEND internal ${dep})
      endif()
    elseif(NOT dep IN_LIST external)
      list(APPEND external ${dep})  # a plain library name such as dl
    endif()
  endforeach()
  set(${out_internal} ${internal} PARENT_SCOPE)
  set(${out_external} ${external} PARENT_SCOPE)
endfunction()

set(GWX_EXPORTED_LIBS "")
set(GWX_EXTERNAL_DEPS "")
gwx_walk_link_interface(gwx_pkg_sdk_static GWX_EXPORTED_LIBS GWX_EXTERNAL_DEPS)
list(REMOVE_ITEM GWX_EXPORTED_LIBS gwx_pkg_headers)
# The client's own closure, in link order (dependents first), for gwx-client.pc.
set(GWX_CLIENT_LIBS "")
set(GWX_CLIENT_EXTERNAL_DEPS "")
gwx_walk_link_interface(gwx_cluster GWX_CLIENT_LIBS GWX_CLIENT_EXTERNAL_DEPS)
list(APPEND GWX_CLIENT_LIBS gwx_cluster)
list(REVERSE GWX_CLIENT_LIBS)
foreach(lib IN LISTS GWX_CLIENT_LIBS)
  get_target_property(type ${lib} TYPE)
  if(type STREQUAL "INTERFACE_LIBRARY")
    list(REMOVE_ITEM GWX_CLIENT_LIBS ${lib})  # nothing to link (e.g. gwx_asio, header-only)
  endif()
endforeach()

foreach(lib IN LISTS GWX_EXPORTED_LIBS)
  foreach(prop INTERFACE_INCLUDE_DIRECTORIES INTERFACE_COMPILE_DEFINITIONS)
    get_target_property(values ${lib} ${prop})
    if(values)
      set(wrapped "")
      foreach(value IN LISTS values)
        if(value MATCHES "^\\$<")
          list(APPEND wrapped "${value}")
        else()
          list(APPEND wrapped "$<BUILD_INTERFACE:${value}>")
        endif()
      endforeach()
      set_target_properties(${lib} PROPERTIES ${prop} "${wrapped}")
    endif()
  endforeach()
endforeach()

# ---- what find_dependency must find, and what pkg-config must link ----
set(GWX_FIND_DEPENDENCIES "")
set(GWX_PC_CLIENT_REQUIRES "")
set(GWX_PC_CLIENT_LIBS_EXTRA "")
foreach(dep IN LISTS GWX_EXTERNAL_DEPS)
  set(find "")
  set(pc "")
  set(libs "")
  if(dep STREQUAL "Threads::Threads")
    set(find "find_dependency(Threads)")
    set(libs "-pthread")
  elseif(dep STREQUAL "protobuf::libprotobuf")
    set(find "find_dependency(Protobuf)")
    set(pc protobuf)
  elseif(dep MATCHES "^gRPC::")
    set(find "find_dependency(gRPC CONFIG)")
    set(pc grpc++)
  elseif(dep MATCHES "^OpenSSL::")
    set(find "find_dependency(OpenSSL)")
    set(pc libcrypto)
    if(dep STREQUAL "OpenSSL::SSL")
      set(pc libssl)
    endif()
  elseif(dep MATCHES "^spdlog::")
    set(find "find_dependency(spdlog)")
    set(pc spdlog)
  elseif(dep MATCHES "^Boost::(.*)$")
    set(find "find_dependency(Boost COMPONENTS ${CMAKE_MATCH_1})")
    set(libs "-lboost_${CMAKE_MATCH_1}")
  elseif(dep MATCHES "^prometheus-cpp::(.*)$")
    set(find "find_dependency(prometheus-cpp CONFIG)")
    set(pc "prometheus-cpp-${CMAKE_MATCH_1}")
  elseif(dep MATCHES "^-" OR NOT dep MATCHES "::")
    set(libs "-l${dep}")
    if(dep MATCHES "^-")
      set(libs "${dep}")
    endif()
  else()
    message(WARNING "gwx install: no find_dependency/pkg-config mapping for ${dep}; "
                    "add one in cmake/gwx_install.cmake")
  endif()
  if(find AND NOT find IN_LIST GWX_FIND_DEPENDENCIES)
    list(APPEND GWX_FIND_DEPENDENCIES "${find}")
  endif()
  if(dep IN_LIST GWX_CLIENT_EXTERNAL_DEPS)
    if(pc AND NOT pc IN_LIST GWX_PC_CLIENT_REQUIRES)
      list(APPEND GWX_PC_CLIENT_REQUIRES ${pc})
    endif()
    if(libs AND NOT libs IN_LIST GWX_PC_CLIENT_LIBS_EXTRA)
      list(APPEND GWX_PC_CLIENT_LIBS_EXTRA ${libs})
    endif()
  endif()
endforeach()
list(JOIN GWX_FIND_DEPENDENCIES "\n" GWX_FIND_DEPENDENCIES)
list(JOIN GWX_PC_CLIENT_REQUIRES " " GWX_PC_CLIENT_REQUIRES)
list(TRANSFORM GWX_CLIENT_LIBS PREPEND "-l" OUTPUT_VARIABLE GWX_PC_CLIENT_LIBS)
list(APPEND GWX_PC_CLIENT_LIBS ${GWX_PC_CLIENT_LIBS_EXTRA} ${GWX_SANITIZE_LINK_FLAG})
list(JOIN GWX_PC_CLIENT_LIBS " " GWX_PC_CLIENT_LIBS)

# ---- install rules ----
foreach(bin IN LISTS GWX_INSTALLED_BINARIES)
  if(TARGET ${bin})
    install(TARGETS ${bin} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()

install(TARGETS gwx_pkg_headers gwx_pkg_sdk gwx_pkg_sdk_static gwx_pkg_client ${GWX_EXPORTED_LIBS}
  EXPORT gwxTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  FILE_SET HEADERS DESTINATION ${GWX_INCLUDE_SUBDIR})

set(GWX_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/gwx)
install(EXPORT gwxTargets NAMESPACE gwx:: DESTINATION ${GWX_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/gwxConfig.cmake.in
  ${CMAKE_BINARY_DIR}/package/gwxConfig.cmake INSTALL_DESTINATION ${GWX_CMAKE_DIR}
  PATH_VARS GWX_INCLUDE_SUBDIR CMAKE_INSTALL_BINDIR)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/package/gwxConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/package/gwxConfig.cmake
  ${CMAKE_BINARY_DIR}/package/gwxConfigVersion.cmake DESTINATION ${GWX_CMAKE_DIR})

# pkg-config files locate the prefix from their own place, so `--prefix` at install time works.
set(GWX_PC_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
file(RELATIVE_PATH GWX_PC_TO_PREFIX /prefix/${GWX_PC_DIR} /prefix)
string(REGEX REPLACE "/$" "" GWX_PC_TO_PREFIX "${GWX_PC_TO_PREFIX}")
foreach(pc gwx-sdk gwx-client)
  configure_file(${CMAKE_CURRENT_LIST_DIR}/${pc}.pc.in ${CMAKE_BINARY_DIR}/package/${pc}.pc @ONLY)
  install(FILES ${CMAKE_BINARY_DIR}/package/${pc}.pc DESTINATION ${GWX_PC_DIR})
endforeach()
