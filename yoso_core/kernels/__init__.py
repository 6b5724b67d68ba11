"""The compiled yoso operators as files: where they are cached, how they are built, what built them.

- ``cache``: the build key, the cache paths and the build metadata (size and SHA-256 checked
  before a library is loaded); depends on nothing else in yoso;
- ``toolchain``: finding nvcc and the CUDA toolkit, and the CUDA architectures to build for;
- ``build``: compiling the libraries in a child process into the cache (``build_kernels``).

Loading the libraries into torch is ``yoso_core.attention.ops``; checking them against the
reference is ``yoso_core.attention.selfcheck``.
"""
