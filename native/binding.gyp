# Built by native/build.mjs, which finds libtorch and passes it in through MOA_TORCH_* variables.
{
  "targets": [
    {
      "target_name": "moa_native",
      "sources": ["src/allocator.cpp", "src/bridge.cpp", "src/cpu_attention.cpp", "src/cpu_attention_f32.cpp", "src/cpu_geglu.cpp", "src/ops.cpp", "src/optim.cpp", "src/system.cpp"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node -p \"process.env.MOA_TORCH_INCLUDE.split(':').join(' ')\")"
      ],
      "defines": [
        "NAPI_EXPERIMENTAL",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "_GLIBCXX_USE_CXX11_ABI=<!(node -p \"process.env.MOA_TORCH_CXX11_ABI\")"
      ],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++20", "-fexceptions", "-frtti", "-O2", "-fopenmp", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "ldflags": ["-fopenmp"],
      "libraries": [
        "-L<!(node -p \"process.env.MOA_TORCH_LIBDIR\")",
        "-Wl,-rpath,<!(node -p \"process.env.MOA_TORCH_LIBDIR\")",
        "-Wl,--no-as-needed",
        "<!@(node -p \"process.env.MOA_TORCH_LIBS.split(':').map(l => '-l' + l).join(' ')\")",
        "-Wl,--as-needed"
      ]
    }
  ]
}
