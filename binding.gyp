{
  "target_defaults": {
    "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-fexceptions"],
    "cflags_cc!": ["-fno-exceptions"]
  },
  "targets": [
    {
      "target_name": "berth",
      "sources": ["addon/binding.cc", "addon/clone.cc", "addon/plan_codec.cc", "addon/layer.cc", "addon/seccomp.cc"],
      "libraries": ["-lseccomp"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "ldflags": ["-Wl,-z,now"]
    },
    {
      "target_name": "berth-init",
      "type": "executable",
      "sources": ["addon/init.cc", "addon/executor.cc", "addon/plan_codec.cc"],
      "ldflags": ["-static", "-s"]
    }
  ]
}
