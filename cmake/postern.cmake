# postern_module(NAME SOURCES... DEPENDS targets...)
# One library per module; the dependency rule (a module links only lower layers) is
# enforced by scripts/check-layers, which reads these DEPENDS lists and the includes.
function(postern_module name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPENDS;PRIVATE" ${ARGN})
  add_library(postern_${name} STATIC ${M_SOURCES})
  add_library(postern::${name} ALIAS postern_${name})
  target_include_directories(postern_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(postern_${name} PUBLIC ${M_DEPENDS} PRIVATE ${M_PRIVATE})
endfunction()
