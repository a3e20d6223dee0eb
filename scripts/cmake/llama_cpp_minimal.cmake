# Included after every project() of the llama-cpp-python build (CMAKE_PROJECT_INCLUDE, set by
# scripts/install.py): llama.cpp's "common" library (argument parsing, chat parsers, downloads
# for its command-line tools) and the HTTP library it pulls in are about half of the compile
# time, and the Python bindings never load them. A normal variable shadows the cache entry that
# llama-cpp-python forces ON (policy CMP0126), and llama.cpp's option() honours it (CMP0077).
set(LLAMA_BUILD_COMMON OFF)
