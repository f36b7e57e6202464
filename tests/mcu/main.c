/* Runs every model check linked in (tests/test_export_mcu.py lists them in CHECKS). */
#define X(name) void name##_check(void);
CHECKS
#undef X
int main(void) {
#define X(name) name##_check();
    CHECKS
#undef X
    return 0;
}
