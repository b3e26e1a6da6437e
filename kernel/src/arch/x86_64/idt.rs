//! Interrupt descriptor table and the trap entry path.
//!
//! Every one of the 256 vectors has a naked entry stub that pushes a uniform
//! trap frame (a dummy error code where the CPU pushes none, then the vector
//! number) and jumps to [`trap_entry`], which saves all general registers and
//! calls [`super::traps::dispatch`] with a pointer to the [`TrapFrame`].
//! `dispatch` returns the frame to resume — the same one, or (once the
//! scheduler switches on interrupts) another thread's — so preemption and
//! exceptions share one path.

use core::arch::naked_asm;

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;

use super::gdt;

/// The machine state saved on trap entry, lowest address first.
#[repr(C)]
#[derive(Clone, Debug)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Pushed by the entry stub.
    pub vector: u64,
    /// Pushed by the CPU for some exceptions, else 0 by the stub.
    pub error_code: u64,
    // The CPU's interrupt frame.
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    /// A frame that resumes at `rip` with stack `rsp` in the segments `cs`
    /// and `ss`, flags `rflags`, the argument register `rdi` and every other
    /// register zero.
    pub fn resume_at(rip: u64, rsp: u64, cs: u64, ss: u64, rflags: u64, rdi: u64, vector: u64) -> TrapFrame {
        TrapFrame {
            r15: 0,
            r14: 0,
            r13: 0,
            r12: 0,
            r11: 0,
            r10: 0,
            r9: 0,
            r8: 0,
            rbp: 0, // ends the frame-pointer chain of stack traces
            rdi,
            rsi: 0,
            rdx: 0,
            rcx: 0,
            rbx: 0,
            rax: 0,
            vector,
            error_code: 0,
            rip,
            cs,
            rflags,
            rsp,
            ss,
        }
    }

    /// Whether the trap interrupted ring 3.
    pub fn is_user_mode(&self) -> bool {
        self.cs & 3 == 3
    }
}

/// Vectors for which the CPU pushes an error code.
const fn pushes_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21 | 29 | 30)
}

/// The second half of every entry path, once the CPU's part of the frame,
/// the error code and the vector are on the stack: push the general
/// registers in [`TrapFrame`] order, call `{dispatch}` with the frame and
/// resume the frame it returns through `{trap_return}`.
macro_rules! save_registers_and_call {
    () => {
        "push rax; push rbx; push rcx; push rdx; push rsi; push rdi; push rbp
         push r8; push r9; push r10; push r11; push r12; push r13; push r14; push r15
         mov rdi, rsp
         cld
         call {dispatch}
         mov rsp, rax
         jmp {trap_return}"
    };
}
pub(super) use save_registers_and_call;

/// Saves the general registers, calls the dispatcher, restores the frame it
/// returns and leaves with `iretq`. From and to ring 3 it also swaps GS
/// (`swapgs`): in the kernel GS always points at this CPU's data
/// (`super::user::PerCpu`), in ring 3 at the task's (zero).
#[unsafe(naked)]
unsafe extern "C" fn trap_entry() -> ! {
    naked_asm!(
        // [rsp] vector, [rsp + 8] error code, [rsp + 16] RIP, [rsp + 24] CS.
        "test qword ptr [rsp + 24], 3",
        "jz 2f",
        "swapgs",
        "2:",
        // 22 quadwords on a stack the CPU aligned to 16: RSP is 16-aligned after.
        save_registers_and_call!(),
        dispatch = sym super::traps::dispatch,
        trap_return = sym trap_return,
    )
}

/// Resumes the [`TrapFrame`] RSP points at: restores the registers and
/// leaves with `iretq` (after `swapgs` if the frame is ring 3's). The one
/// way back from every trap, interrupt and system call.
#[unsafe(naked)]
pub(super) unsafe extern "C" fn trap_return() -> ! {
    naked_asm!(
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rbp",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rbx",
        "pop rax",
        // Drop the vector and error code.
        "add rsp, 16",
        // [rsp] RIP, [rsp + 8] CS.
        "test qword ptr [rsp + 8], 3",
        "jz 2f",
        "swapgs",
        "2:",
        "iretq",
    )
}

macro_rules! entry_stubs {
    ($($vector:literal)*) => {
        /// One entry stub per vector, indexed by vector number.
        static ENTRY_STUBS: [unsafe extern "C" fn() -> !; 256] = [$({
            #[unsafe(naked)]
            unsafe extern "C" fn stub() -> ! {
                naked_asm!(
                    ".if {has_error_code} == 0",
                    "push 0",
                    ".endif",
                    "push {vector}",
                    "jmp {entry}",
                    has_error_code = const pushes_error_code($vector) as u8,
                    vector = const $vector,
                    entry = sym trap_entry,
                )
            }
            stub
        }),*];
    };
}

entry_stubs! {
        0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15
        16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
        32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47
        48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63
        64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79
        80 81 82 83 84 85 86 87 88 89 90 91 92 93 94 95
        96 97 98 99 100 101 102 103 104 105 106 107 108 109 110 111
        112 113 114 115 116 117 118 119 120 121 122 123 124 125 126 127
        128 129 130 131 132 133 134 135 136 137 138 139 140 141 142 143
        144 145 146 147 148 149 150 151 152 153 154 155 156 157 158 159
        160 161 162 163 164 165 166 167 168 169 170 171 172 173 174 175
        176 177 178 179 180 181 182 183 184 185 186 187 188 189 190 191
        192 193 194 195 196 197 198 199 200 201 202 203 204 205 206 207
        208 209 210 211 212 213 214 215 216 217 218 219 220 221 222 223
        224 225 226 227 228 229 230 231 232 233 234 235 236 237 238 239
        240 241 242 243 244 245 246 247 248 249 250 251 252 253 254 255
}

/// A 64-bit interrupt gate descriptor.
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    /// IST slot + 1, or 0 for "stay on the current stack".
    ist: u8,
    /// Present, DPL, type 0xE (interrupt gate: IF cleared on entry).
    attributes: u8,
    offset_middle: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    fn interrupt(handler: u64, selector: u16, ist_slot: Option<usize>) -> Self {
        Gate {
            offset_low: handler as u16,
            selector,
            ist: ist_slot.map_or(0, |slot| slot as u8 + 1),
            attributes: 0x8E,
            offset_middle: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

static IDT: Once<Idt> = Once::new();

/// Vector numbers with a fixed meaning.
pub mod vector {
    pub const BREAKPOINT: u8 = 3;
    pub const NMI: u8 = 2;
    pub const DOUBLE_FAULT: u8 = 8;
    pub const PAGE_FAULT: u8 = 14;
    pub const MACHINE_CHECK: u8 = 18;
    /// Exceptions occupy 0..32; interrupts start here.
    pub const FIRST_INTERRUPT: u8 = 32;
}

pub fn init() {
    let selector = gdt::kernel_code_selector();
    let idt = IDT.call_once(|| {
        Idt(core::array::from_fn(|index| {
            let ist = match index as u8 {
                vector::DOUBLE_FAULT => Some(gdt::DOUBLE_FAULT_IST),
                vector::NMI => Some(gdt::NMI_IST),
                vector::MACHINE_CHECK => Some(gdt::MACHINE_CHECK_IST),
                _ => None,
            };
            Gate::interrupt(ENTRY_STUBS[index] as usize as u64, selector, ist)
        }))
    });
    let pointer =
        DescriptorTablePointer { limit: (size_of::<Idt>() - 1) as u16, base: VirtAddr::from_ptr(idt) };
    // SAFETY: the table is a valid IDT in a static that lives forever; every
    // gate points at an entry stub in this module.
    unsafe { lidt(&pointer) };
}
