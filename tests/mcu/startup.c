/* Bare-metal start for QEMU's Cortex-M boards (tests/test_export_mcu.py):
 * the vector table, a reset handler that turns the FPU on, copies .data
 * and zeroes .bss before main, and output and exit through semihosting
 * (QEMU's -semihosting). No C library start files: newlib's crt0 asks the
 * emulator where the heap goes, which is wrong on mps3-an547, and these
 * programs need no heap. */
#include <stdint.h>

extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[];
extern uint32_t __stack_top[];
int main(void);
void clstm_check_write(const char *text);
void Reset_Handler(void);
void Fault_Handler(void);

/* A semihosting call: operation op, argument block (or value) arg. */
static int semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void clstm_check_write(const char *text) { semihost(0x04, text); } /* SYS_WRITE0 */

static void leave(int ok) { /* SYS_EXIT: ADP_Stopped_ApplicationExit, or RunTimeErrorUnknown */
    semihost(0x18, (const void *)(uintptr_t)(ok ? 0x20026u : 0x20023u));
    for (;;) {
    }
}

void Reset_Handler(void) {
    /* CPACR: full access to CP10 and CP11, or the first float instruction
     * faults (and without a fault handler QEMU spins silently) */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    for (uint32_t *s = __data_load, *d = __data_start; d < __data_end;) *d++ = *s++;
    for (uint32_t *d = __bss_start; d < __bss_end;) *d++ = 0;
    leave(main() == 0);
}

void Fault_Handler(void) {
    clstm_check_write("fault\n");
    leave(0);
}

/* The initial stack pointer, reset, and every exception to the fault handler. */
__attribute__((section(".vectors"), used)) static const uintptr_t vectors[16] = {
    (uintptr_t)__stack_top,      (uintptr_t)Reset_Handler, (uintptr_t)Fault_Handler,
    (uintptr_t)Fault_Handler,    (uintptr_t)Fault_Handler, (uintptr_t)Fault_Handler,
    (uintptr_t)Fault_Handler,    0, 0, 0, 0,
    (uintptr_t)Fault_Handler,    (uintptr_t)Fault_Handler, 0,
    (uintptr_t)Fault_Handler,    (uintptr_t)Fault_Handler,
};
