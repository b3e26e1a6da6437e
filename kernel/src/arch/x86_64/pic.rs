//! The legacy 8259 PICs: remapped away from the exception vectors (their
//! power-on base, vector 8, would make the PIT's IRQ 0 look like a double
//! fault) and fully masked. Device interrupts go through the APIC.

use x86_64::instructions::port::Port;

const PIC1_COMMAND: u16 = 0x20;
const PIC1_DATA: u16 = 0x21;
const PIC2_COMMAND: u16 = 0xA0;
const PIC2_DATA: u16 = 0xA1;
/// Where the PICs' 16 lines land if one ever fires spuriously.
pub const PIC_VECTOR_BASE: u8 = 0x20;

pub fn remap_and_mask() {
    let mut pic1_command = Port::<u8>::new(PIC1_COMMAND);
    let mut pic1_data = Port::<u8>::new(PIC1_DATA);
    let mut pic2_command = Port::<u8>::new(PIC2_COMMAND);
    let mut pic2_data = Port::<u8>::new(PIC2_DATA);
    // SAFETY: the standard ICW1–ICW4 initialisation of both PICs, done once
    // at boot with interrupts disabled; nothing else drives these ports.
    unsafe {
        pic1_command.write(0x11); // ICW1: initialise, expect ICW4
        pic2_command.write(0x11);
        pic1_data.write(PIC_VECTOR_BASE); // ICW2: vector offsets
        pic2_data.write(PIC_VECTOR_BASE + 8);
        pic1_data.write(0x04); // ICW3: slave on IRQ 2
        pic2_data.write(0x02);
        pic1_data.write(0x01); // ICW4: 8086 mode
        pic2_data.write(0x01);
        pic1_data.write(0xFF); // mask every line
        pic2_data.write(0xFF);
    }
}
