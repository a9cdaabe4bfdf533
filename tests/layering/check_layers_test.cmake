# cmake/check_layers.cmake must refuse an upward include and gRPC in common/,
# and accept includes that point down. Run by ctest:
#   cmake -DCHECK=<check_layers.cmake> -DWORK=<scratch dir> -P check_layers_test.cmake
function(write_tree name file text)
  file(REMOVE_RECURSE ${WORK}/${name})
  get_filename_component(dir ${WORK}/${name}/common/${file} DIRECTORY)
  file(MAKE_DIRECTORY ${dir})
  file(WRITE ${WORK}/${name}/common/${file} "${text}\n")
endfunction()

# Runs the check on tree `name`; fails this test unless it exits `want_fail`
# and (when failing) names `want_text`.
function(expect name want_fail want_text)
  execute_process(COMMAND ${CMAKE_COMMAND} -DROOT=${WORK}/${name} -P ${CHECK}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(want_fail AND rc EQUAL 0)
    message(FATAL_ERROR "${name}: the check accepted it:\n${out}${err}")
  endif()
  if(NOT want_fail AND NOT rc EQUAL 0)
    message(FATAL_ERROR "${name}: the check refused it:\n${out}${err}")
  endif()
  if(want_text)
    string(FIND "${err}" "${want_text}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "${name}: the message does not name '${want_text}':\n${err}")
    endif()
  endif()
  message(STATUS "${name}: ok")
endfunction()

write_tree(upward ops/bad_kernel.h "#include \"common/engine/model.h\"")
expect(upward TRUE "common/ops/bad_kernel.h: #include \"common/engine/model.h\"")
write_tree(grpc speculation/rpc.cc "#include <grpcpp/grpcpp.h>")
expect(grpc TRUE "common/speculation/rpc.cc")
write_tree(service kv/bad.cc "#include \"router/scheduler.h\"")
expect(service TRUE "common/kv/bad.cc")
write_tree(unknown_layer misc/x.h "#include \"common/util/cli.h\"")
expect(unknown_layer TRUE "'misc' is not a known layer")
write_tree(downward speculation/fine.cc "#include \"common/engine/model.h\"\n#include \"common/util/cli.h\"")
expect(downward FALSE "")
