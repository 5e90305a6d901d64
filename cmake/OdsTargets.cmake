# Helpers shared by every ODS target.

# Warnings for ODS's own code only (third-party headers are included as SYSTEM).
function(ods_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wno-unused-parameter)
  if(ODS_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# ods_library(NAME SOURCES ... DEPS ...): the library target ods_<NAME> for one component.
function(ods_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(ods_${name} STATIC ${ARG_SOURCES})
  target_include_directories(ods_${name} PUBLIC ${PROJECT_SOURCE_DIR}/include
                                         PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(ods_${name} PUBLIC ${ARG_DEPS})
  ods_set_warnings(ods_${name})
endfunction()
