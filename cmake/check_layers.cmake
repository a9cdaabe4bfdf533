# The layers of common/, bottom to top, and what each may include. A file in a
# layer includes only its own layer and the layers named here; an include that
# reaches up (ops including engine, say) or anything gRPC stops the configure
# step with the file and the include named. The CUDA backend (common/*/cuda/)
# (and every .cu file) sits beside the CPU engine and may include what the
# engine may; engine/model_factory.cc, the one place that knows every backend,
# may include it.
#
# Run at configure time from common/CMakeLists.txt, and as a script:
#   cmake -DROOT=<source dir> -P cmake/check_layers.cmake
set(SPECSERVE_LAYER_DEPS_util "")
set(SPECSERVE_LAYER_DEPS_sampling "util")
set(SPECSERVE_LAYER_DEPS_tokenizer "util")
set(SPECSERVE_LAYER_DEPS_model "util;tokenizer")
set(SPECSERVE_LAYER_DEPS_chat_template "util;model")
set(SPECSERVE_LAYER_DEPS_ops "util;model")
set(SPECSERVE_LAYER_DEPS_kv "util;model;ops")
set(SPECSERVE_LAYER_DEPS_parallel "util;model;ops")
set(SPECSERVE_LAYER_DEPS_engine "util;tokenizer;model;ops;kv;parallel;sampling")
set(SPECSERVE_LAYER_DEPS_speculation "util;tokenizer;model;ops;kv;parallel;sampling;engine")
set(SPECSERVE_LAYER_DEPS_cuda "util;tokenizer;model;ops;kv;parallel;sampling;engine")
set(SPECSERVE_LAYERS
    util sampling tokenizer model chat_template ops kv parallel engine speculation)

# Sets ${out} to the list of violations (one "file: include" string each).
function(specserve_layer_violations root out)
  set(found "")
  file(GLOB_RECURSE files RELATIVE ${root}/common
       ${root}/common/*.h ${root}/common/*.cc ${root}/common/*.inc ${root}/common/*.cu
       ${root}/common/*.cuh)
  foreach(rel ${files})
    string(REGEX MATCH "^[a-z_]+" layer "${rel}")
    if(rel MATCHES "/cuda/" OR rel MATCHES "\\.cuh?$")
      set(layer cuda)
    endif()
    if(NOT DEFINED SPECSERVE_LAYER_DEPS_${layer})
      list(APPEND found "common/${rel}: folder '${layer}' is not a known layer (cmake/check_layers.cmake)")
      continue()
    endif()
    set(allowed ${layer} ${SPECSERVE_LAYER_DEPS_${layer}})
    if(layer STREQUAL "cuda")
      list(APPEND allowed ${SPECSERVE_LAYERS})
      list(REMOVE_ITEM allowed speculation chat_template)
    endif()
    file(STRINGS ${root}/common/${rel} includes REGEX "^[ \t]*#[ \t]*include")
    foreach(line ${includes})
      if(line MATCHES "#[ \t]*include[ \t]*[\"<](grpc|grpcpp|google/protobuf|prometheus)/")
        list(APPEND found "common/${rel}: ${line} (common/ has no gRPC, protobuf or metrics)")
      elseif(line MATCHES "#[ \t]*include[ \t]*\"(services|router|proto|draft_service|target_service|tools)/")
        list(APPEND found "common/${rel}: ${line} (common/ must not include the services)")
      elseif(line MATCHES "#[ \t]*include[ \t]*\"common/([a-z_]+)/")
        set(target_layer ${CMAKE_MATCH_1})
        if(line MATCHES "\"common/[a-z_]+/cuda/")
          set(target_layer cuda)
        endif()
        list(FIND allowed ${target_layer} index)
        # MakeModel is the one engine file that knows every backend.
        if(rel STREQUAL "engine/model_factory.cc" AND target_layer STREQUAL "cuda")
          set(index 0)
        endif()
        if(index EQUAL -1)
          list(JOIN allowed ", " allowed_text)
          list(APPEND found "common/${rel}: ${line} (layer '${layer}' may include only: ${allowed_text})")
        endif()
      endif()
    endforeach()
  endforeach()
  set(${out} "${found}" PARENT_SCOPE)
endfunction()

if(CMAKE_SCRIPT_MODE_FILE AND NOT DEFINED SPECSERVE_LAYERS_INCLUDED_ONLY)
  if(NOT ROOT)
    message(FATAL_ERROR "usage: cmake -DROOT=<source dir> -P check_layers.cmake")
  endif()
  specserve_layer_violations(${ROOT} violations)
  if(violations)
    list(JOIN violations "\n  " text)
    message(FATAL_ERROR "upward includes in common/:\n  ${text}")
  endif()
  message(STATUS "common/ layers: every include points down")
endif()
