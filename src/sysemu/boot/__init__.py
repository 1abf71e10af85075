"""x86 boot: the kernel image's EFI stub header and boot protocol (arch/x86/boot)."""
